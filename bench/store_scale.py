"""Embedded store at scale: Qdrant Edge vs qdrant-client local mode, side by side.

Clustered 512-d vectors (real CLIP embeddings cluster; uniformly random
vectors are HNSW's worst case): 1000 centres, 20 sub-centres each, plus
noise, L2-normalised. Each point carries a `camera_id` keyword of 20 values
(the filtered queries ask for one, ~5% of the points). Per engine and size:
ingest rate (through the VectorStore interface), index build time (Edge),
p50/p99 latency of top-10 queries with and without the filter, recall@10
against exact numpy search, and the process RSS.

    python bench/store_scale.py --sizes 100000,1000000

qdrant-client local mode is brute force in Python: it runs only up to
--local-max points (100k by default; at 1M one query takes seconds).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsearch.vectors import l2_normalise
from search_gateway import domain as d
from search_gateway.store.edge_store import EdgeStore, EdgeTuning
from search_gateway.store.qdrant_store import QdrantStore

DIM = 512
CENTRES = 1000
SUBS = 20
KEYWORDS = 20
SPEC = d.CollectionSpec("bench-clustered", "synthetic", DIM)


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Data:
    """Hierarchically clustered vectors; points and queries drawn the same way."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.centres = l2_normalise(rng.normal(size=(CENTRES, DIM)))
        # Sub-centres at cosine ~0.8 from their centre; points ~0.85 from theirs.
        offs = rng.normal(size=(CENTRES, SUBS, DIM)) * (0.75 / np.sqrt(DIM))
        self.subs = l2_normalise(self.centres[:, None, :] + offs).astype(np.float32)
        self.rng = rng

    def draw(self, n: int) -> np.ndarray:
        c = self.rng.integers(0, CENTRES, n)
        s = self.rng.integers(0, SUBS, n)
        noise = self.rng.normal(size=(n, DIM)).astype(np.float32) * (0.6 / np.sqrt(DIM))
        return l2_normalise(self.subs[c, s] + noise)


@dataclass
class Result:
    engine: str
    size: int
    ingest_pps: float
    build_s: float
    unf_p50: float
    unf_p99: float
    unf_recall: float
    flt_p50: float
    flt_p99: float
    flt_recall: float
    rss_mb: float


def _points(ids: list[str], vectors: np.ndarray, keywords: np.ndarray) -> list[d.StoredPoint]:
    return [
        d.StoredPoint(pid, {d.CAMERA_ID: f"cam-{kw:02d}"}, vec)
        for pid, vec, kw in zip(ids, vectors, keywords, strict=True)
    ]


def exact_top10(
    base: np.ndarray, ids: np.ndarray, q: np.ndarray, mask: np.ndarray | None
) -> list[set[str]]:
    scores = q @ base.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return [set(ids[row]) for row in top]


def run_engine(
    name: str,
    store: EdgeStore | QdrantStore,
    base: np.ndarray,
    ids: np.ndarray,
    keywords: np.ndarray,
    queries: np.ndarray,
    truth_unf: list[set[str]],
    truth_flt: list[set[str]],
    recall_n: int,
    batch: int,
    ef_values: list[int],
) -> list[Result]:
    store.open(SPEC)
    n = len(base)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        sl = slice(start, start + batch)
        store.upsert(_points(list(ids[sl]), base[sl], keywords[sl]))
    ingest_s = time.perf_counter() - t0
    build_s = 0.0
    if isinstance(store, EdgeStore):
        t0 = time.perf_counter()
        store.optimize()
        build_s = time.perf_counter() - t0
    flt = d.Filter(must=[d.Match(d.CAMERA_ID, "cam-03")])

    def measure(f: d.Filter | None, truth: list[set[str]]) -> tuple[float, float, float]:
        lat, recalls = [], []
        for i, q in enumerate(queries):
            t = time.perf_counter()
            hits = store.search(q, 10, filter=f)
            lat.append(time.perf_counter() - t)
            if i < recall_n:
                recalls.append(len(truth[i] & {h.id for h in hits}) / 10)
        ms = np.array(lat) * 1000
        return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(np.mean(recalls))

    results = []
    for ef in ef_values:
        label = name
        if isinstance(store, EdgeStore):
            store._tuning = EdgeTuning(**{**store._tuning.__dict__, "hnsw_ef": ef})
            label = f"{name} ef={ef}"
        unf = measure(None, truth_unf)
        fil = measure(flt, truth_flt)
        results.append(Result(label, n, n / ingest_s, build_s, *unf, *fil, rss_mb()))
        print_row(results[-1])
    return results


HEADER = (
    f"{'engine':<22}{'points':>9}{'ingest/s':>10}{'build s':>9}"
    f"{'p50 ms':>9}{'p99 ms':>9}{'rec@10':>8}{'f p50':>9}{'f p99':>9}{'f rec':>8}{'RSS MB':>9}"
)


def print_row(r: Result) -> None:
    print(
        f"{r.engine:<22}{r.size:>9}{r.ingest_pps:>10.0f}{r.build_s:>9.1f}"
        f"{r.unf_p50:>9.2f}{r.unf_p99:>9.2f}{r.unf_recall:>8.3f}"
        f"{r.flt_p50:>9.2f}{r.flt_p99:>9.2f}{r.flt_recall:>8.3f}{r.rss_mb:>9.0f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--recall-queries", type=int, default=100, help="queries checked for recall")
    ap.add_argument("--local-max", type=int, default=100_000, help="largest size for local mode")
    ap.add_argument("--local-queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--ef", default="64,128,256", help="Edge search ef values to report")
    ap.add_argument("--m", type=int, default=EdgeTuning.hnsw_m)
    ap.add_argument("--ef-construct", type=int, default=EdgeTuning.hnsw_ef_construct)
    ap.add_argument("--engines", default="edge,local")
    ap.add_argument("--dir", default=None, help="data folder (default: a temp folder)")
    args = ap.parse_args()

    ef_values = [int(x) for x in args.ef.split(",")]
    engines = args.engines.split(",")
    root = Path(args.dir or tempfile.mkdtemp(prefix="store_scale_"))
    print(f"data under {root}; RSS at start {rss_mb():.0f} MB", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        data = Data()
        base = np.concatenate([data.draw(min(100_000, size - i)) for i in range(0, size, 100_000)])
        ids = np.array([str(uuid.UUID(int=i + 1)) for i in range(size)])
        # uuid order is not insertion order in the shard: shuffle nothing else.
        keywords = data.rng.integers(0, KEYWORDS, size)
        queries = data.draw(args.queries)
        mask = keywords == 3
        truth_unf = exact_top10(base, ids, queries[: args.recall_queries], None)
        truth_flt = exact_top10(base, ids, queries[: args.recall_queries], mask)
        print(
            f"\n== {size} points, {args.queries} queries (recall on {args.recall_queries}); "
            f"filter keeps {mask.mean():.1%}; RSS with data {rss_mb():.0f} MB",
            flush=True,
        )
        print(HEADER, flush=True)
        for engine in engines:
            gc.collect()
            if engine == "edge":
                tuning = EdgeTuning(
                    hnsw_m=args.m,
                    hnsw_ef_construct=args.ef_construct,
                    optimize_after_points=10 * size,  # bulk load: one build at the end
                )
                store = EdgeStore.open_dir(root / f"edge_{size}", "bench", tuning)
                run_engine(
                    "edge",
                    store,
                    base,
                    ids,
                    keywords,
                    queries,
                    truth_unf,
                    truth_flt,
                    args.recall_queries,
                    args.batch,
                    ef_values,
                )
            elif engine == "local":
                if size > args.local_max:
                    print(
                        f"{'qdrant-local':<22}{size:>9}  skipped: brute force in Python, "
                        f"seconds per query at this size (--local-max {args.local_max})"
                    )
                    continue
                store = QdrantStore.embedded(root / f"local_{size}", "bench")
                nq = min(args.local_queries, args.queries)
                run_engine(
                    "qdrant-local",
                    store,
                    base,
                    ids,
                    keywords,
                    queries[:nq],
                    truth_unf,
                    truth_flt,
                    min(args.recall_queries, nq),
                    args.batch,
                    [0],
                )
            store.close()
            del store
        del base


if __name__ == "__main__":
    main()
