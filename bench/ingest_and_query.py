"""End-to-end ingest throughput against its ideal, and query latency by size.

Part 1 — ingest (embedded gateway: decode, embed, upsert; captions off) of
camera-sized JPEGs, against the ideal computed in the same run from the
measured per-image costs: 1 / (decode-and-preprocess time + model time),
since decoding and the model share the same CPU cores. Each runtime is
ingested with the pipeline's stages run batch after batch ("seq") and
overlapped ("ovl": batch N+1 read, hashed and looked up while batch N is
embedded and N-1 written), in the same run, so the two ratios compare;
with --repeats R the costs and both ingests are measured R times, interleaved,
and the best of each is compared (on a shared machine the best is the run
least disturbed by others).

Part 2 — query latency (text encode + search), p50/p99, with and without a
keyword filter, at several collection sizes (points are written straight to
the store with clustered random vectors; real embeddings cluster).

    python bench/ingest_and_query.py [--model ViT-B-32] [--images 48] [--sizes 10000,100000]
                                     [--overlap off,on]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from PIL import Image

from embedder_service.model import ClipEmbedder
from imgsearch.vectors import l2_normalise
from search_gateway import domain as d
from search_gateway.core import GatewayCore, SearchQuery
from search_gateway.ingest import IngestItem
from search_gateway.model_clients.local import LocalEmbedder
from search_gateway.settings import GatewaySettings
from search_gateway.store.base import VectorStore


def open_store(engine: str, folder: Path) -> VectorStore:
    """The embedded store the gateway would build (engine: edge | qdrant-local)."""
    from search_gateway.assemble import build_store

    return build_store(
        GatewaySettings(data_dir=str(folder), collection="bench", store_engine=engine)
    )


def camera_jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: smooth gradients plus texture, quality 90."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            127 + 100 * np.sin(x / (37 + seed % 11) + c) * np.cos(y / (53 + seed % 7) - c)
            for c in (0.0, 1.3, 2.6)
        ],
        axis=-1,
    )
    noise = rng.normal(0, 12, (height // 4, width // 4, 3)).repeat(4, 0).repeat(4, 1)
    arr = np.clip(base + noise[:height, :width], 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def per_image_costs(model: ClipEmbedder, files: list[Path], batch: int) -> tuple[float, float]:
    """(decode+preprocess s/image on one thread, model s/image at `batch`)."""
    started = time.perf_counter()
    tensors = [model.preprocess_image(f.read_bytes()) for f in files]
    decode = (time.perf_counter() - started) / len(files)
    model.encode_image_batch(tensors[:batch])  # warm
    started = time.perf_counter()
    done = 0
    for s in range(0, len(tensors), batch):
        chunk = tensors[s : s + batch]
        model.encode_image_batch(chunk)
        done += len(chunk)
    return decode, (time.perf_counter() - started) / done


async def ingest_rate(
    model: ClipEmbedder, files: list[Path], batch: int, engine: str, overlap: bool = True
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(engine, Path(tmp))
        core = GatewayCore(LocalEmbedder(model, batch_size=batch), None, store,
                           read_roots=[files[0].parent])  # fmt: skip
        core.ingest_pipeline.overlap = overlap
        await core.open()

        async def items() -> AsyncIterator[IngestItem]:
            for f in files:
                yield IngestItem(path=str(f))

        started = time.perf_counter()
        n = sum([1 async for o in core.ingest(items()) if o.status.value == "added"])
        rate = n / (time.perf_counter() - started)
        await core.close()
    assert n == len(files), f"only {n} of {len(files)} added"
    return rate


def clustered(n: int, dim: int, rng: np.random.Generator, clusters: int = 200) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    v = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim)).astype(
        np.float32
    )
    return l2_normalise(v)


async def query_latency(
    model: ClipEmbedder, size: int, queries: int, engine: str
) -> dict[str, list[float]]:
    rng = np.random.default_rng(size)
    dim = model.info.dimension
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(engine, Path(tmp))
        core = GatewayCore(LocalEmbedder(model), None, store)
        await core.open()
        chunk = 2048
        for s in range(0, size, chunk):
            vecs = clustered(min(chunk, size - s), dim, rng)
            points = []
            for i, v in enumerate(vecs):
                n = s + i
                payload = {"path": f"/bench/{n}.jpg", "camera_id": f"cam-{n % 20}"}
                points.append(d.StoredPoint(d.point_id_for(f"{n:064x}"), payload, v))
            store.upsert(points)
        out: dict[str, list[float]] = {"unfiltered": [], "filtered": []}
        flt = d.Filter(must=(d.Match("camera_id", "cam-3"),))
        words = ["red", "car", "dog", "beach", "man", "jacket", "tree", "city"]
        for q in range(queries):
            text = f"a {words[q % 8]} near a {words[(q * 3) % 8]}"
            for name, f in (("unfiltered", None), ("filtered", flt)):
                started = time.perf_counter()
                await core.search(SearchQuery(text=text, k=10, filter=f))
                out[name].append(time.perf_counter() - started)
        await core.close()
    return out


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values) * 1000, p))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", default="", help="'' = random weights (no download)")
    ap.add_argument("--images", type=int, default=48, help="JPEGs per camera size")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--sizes", default="10000,100000", help="collection sizes for query latency ('' = skip)"
    )
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument(
        "--engines",
        default="edge,qdrant-local",
        help="embedded stores for query latency (the first also takes the ingest)",
    )
    ap.add_argument(
        "--runtimes",
        default="eager/full,eager,auto",
        help="embedder runtimes to compare for ingest, '/full' = no JPEG draft decode; "
        "the first is the baseline, the last one runs the queries",
    )
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds; best is shown")
    ap.add_argument("--photo-sizes", default="1920x1080,4000x3000", help="camera JPEG sizes")
    ap.add_argument(
        "--overlap",
        default="off,on",
        help="ingest with the pipeline's stages sequential (off) and/or overlapped (on)",
    )
    args = ap.parse_args()
    overlaps = [{"off": False, "on": True}[x] for x in args.overlap.split(",")]
    photo_sizes = [tuple(int(v) for v in s.split("x")) for s in args.photo_sizes.split(",")]
    engines = args.engines.split(",")
    sizes = [int(x) for x in args.sizes.split(",") if x]

    models = {}
    for label in args.runtimes.split(","):
        runtime, _, decode = label.partition("/")
        m = ClipEmbedder(
            args.model, args.pretrained, runtime=runtime, draft_decode=decode != "full"
        )
        m.warmup()
        models[label] = m
        print(f"{label}: {m.info.model} on {m.info.device} {m.info.precision}, "
              f"{'full' if decode == 'full' else 'draft'} JPEG decode")  # fmt: skip
    print("\ningest (decode + embed + upsert, embedded, captions off)")
    print(f"{'runtime':<13} {'JPEG':<10} {'stages':<6} {'decode ms':>9} {'model ms':>9} "
          f"{'ideal/s':>8} {'got/s':>7} {'ratio':>6}")  # fmt: skip
    rates: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in photo_sizes:
            folder = Path(tmp) / f"{w}x{h}"
            folder.mkdir()
            files = []
            for i in range(args.images):
                f = folder / f"img{i:04d}.jpg"
                f.write_bytes(camera_jpeg(w, h, i))
                files.append(f)
            for runtime, m in models.items():
                costs: list[tuple[float, float]] = []
                runs: dict[bool, list[float]] = {o: [] for o in overlaps}
                for _ in range(args.repeats):  # interleaved, so drift hits all alike
                    costs.append(per_image_costs(m, files, args.batch))
                    for overlap in overlaps:
                        runs[overlap].append(
                            await ingest_rate(m, files, args.batch, engines[0], overlap)
                        )
                decode, infer = min(costs, key=sum)
                ideal = 1.0 / (decode + infer)
                got_by: dict[bool, float] = {}
                for overlap in overlaps:
                    got = got_by[overlap] = max(runs[overlap])
                    rates[(runtime, f"{w}x{h}")] = got
                    print(f"{runtime:<13} {w}x{h:<5} {'ovl' if overlap else 'seq':<6} "
                          f"{decode * 1000:>9.1f} {infer * 1000:>9.1f} {ideal:>8.1f} {got:>7.1f} "
                          f"{got / ideal:>6.2f}")  # fmt: skip
                if len(got_by) == 2:
                    print(f"{'':<13} {w}x{h:<5} overlapped / sequential = "
                          f"{got_by[True] / got_by[False]:.2f}x")  # fmt: skip
    names = list(models)
    for label in (f"{w}x{h}" for w, h in photo_sizes):
        for name in names[1:]:
            print(f"{label}: {name} ingests {rates[(name, label)] / rates[(names[0], label)]:.2f}x "
                  f"the images/s of {names[0]}")  # fmt: skip
    model = models[names[-1]]

    print("\nquery latency (text encode + search, k=10), ms")
    print(f"{'engine':<13} {'points':>8} {'filter':<11} {'p50':>7} {'p99':>7}")
    for size in sizes:
        for engine in engines:
            lat = await query_latency(model, size, args.queries, engine)
            for name, values in lat.items():
                print(
                    f"{engine:<13} {size:>8} {name:<11} {pct(values, 50):>7.1f} {pct(values, 99):>7.1f}"
                )


if __name__ == "__main__":
    asyncio.run(main())
