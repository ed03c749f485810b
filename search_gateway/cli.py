"""`imgsearch`: index folders of images and search them by what you remember.

Embedded by default (models in-process, Qdrant on disk, no servers);
`--gateway host:port` sends every command through the service suite instead,
with identical output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imgsearch.errors import ImgsearchError, InvalidInput
from imgsearch.serving.logs import configure_logging
from search_gateway import domain as d
from search_gateway.core import Hit, SearchQuery, Stats
from search_gateway.filter_syntax import parse_filters
from search_gateway.ingest import IngestItem, IngestOutcome, IngestStatus
from search_gateway.meta_syntax import parse_meta
from search_gateway.settings import GatewaySettings

log = logging.getLogger("imgsearch")

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif"}
)


class GatewayAPI(Protocol):
    """What the CLI needs; GatewayCore (embedded) and RemoteGateway provide it."""

    def ingest(self, items: AsyncIterator[IngestItem]) -> AsyncIterator[IngestOutcome]: ...
    async def search(self, q: SearchQuery, timeout: float | None = None) -> list[Hit]: ...
    async def get(self, ids: Sequence[str]) -> tuple[list[Hit], list[str]]: ...
    async def delete(self, ids: Sequence[str] = (), filter: d.Filter | None = None) -> int: ...
    async def stats(self) -> Stats: ...
    async def close(self) -> None: ...


# -- wiring ------------------------------------------------------------------------
_SETTING_FLAGS = {
    "data_dir": "data_dir",
    "collection": "collection",
    "qdrant_url": "qdrant_url",
    "model": "model",
    "pretrained": "pretrained",
    "caption_model": "caption_model",
    "device": "device",
    "embedder": "embedder_address",
    "captioner": "captioner_address",
}


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    given = {}
    for flag, name in _SETTING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            given[name] = value
    return GatewaySettings(**given)


async def open_api(
    args: argparse.Namespace, read_roots: Sequence[Path] = (), captions: bool = False
) -> GatewayAPI:
    if args.gateway:
        from imgsearch.serving.auth import bearer
        from imgsearch.serving.security import channel_credentials
        from search_gateway.remote_api import RemoteGateway

        key = args.api_key or os.environ.get("IMGSEARCH_GATEWAY_API_KEY")
        ca = args.tls_ca or os.environ.get("IMGSEARCH_GATEWAY_TLS_CA")
        return RemoteGateway(
            args.gateway, credentials=channel_credentials(ca), metadata=bearer(key)
        )
    from search_gateway.assemble import build_core

    settings = settings_from(args)
    return await build_core(settings, read_roots=read_roots, with_captioner=captions)


def find_images(root: Path) -> list[Path]:
    """Image files under root, recursively, in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def load_sidecar(path: Path) -> dict[str, dict[str, Any]]:
    """Per-file metadata from a JSON-lines file: {"file": "a/b.jpg", "metadata": {...}}.

    `file` is relative to the sidecar's folder; lines without `metadata` use
    every key except `file`.
    """
    out: dict[str, dict[str, Any]] = {}
    base = path.parent.resolve()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            name = entry.pop("file")
        except (ValueError, KeyError, AttributeError):
            raise InvalidInput(f"{path}:{n}: expected a JSON object with a 'file' key") from None
        meta = entry.get("metadata", entry)
        out[str((base / name).resolve())] = dict(meta)
    return out


# -- index ---------------------------------------------------------------------------
@dataclass
class IndexSummary:
    counts: dict[IngestStatus, int] = field(default_factory=lambda: dict.fromkeys(IngestStatus, 0))
    failures: list[tuple[str, str]] = field(default_factory=list)
    caption_pending: int = 0
    seconds: float = 0.0


async def run_index(args: argparse.Namespace) -> int:
    root = Path(args.dir).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInput(f"{args.dir}: not a folder")
    files = find_images(root)
    if not files:
        print(f"no images under {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return 0
    meta = parse_meta(args.meta)
    sidecar = load_sidecar(Path(args.meta_jsonl)) if args.meta_jsonl else {}
    api = await open_api(args, read_roots=[root], captions=args.with_captions)
    summary = IndexSummary()
    sent: list[str] = []
    remote = bool(args.gateway)

    async def items() -> AsyncIterator[IngestItem]:
        for path in files:
            uri = str(path)
            item_meta = {**meta, **sidecar.get(uri, {})}
            common = dict(
                uri=uri,
                metadata=item_meta,
                with_captions=args.with_captions,
                near_duplicate_threshold=args.near_duplicates or 0.0,
            )
            if remote:  # the gateway cannot see this machine's files: send bytes
                try:
                    data = await asyncio.to_thread(path.read_bytes)
                except OSError as exc:
                    summary.counts[IngestStatus.FAILED] += 1
                    summary.failures.append((uri, f"cannot read: {exc.strerror}"))
                    progress.update(1)
                    continue
                sent.append(uri)
                yield IngestItem(data=data, **common)  # type: ignore[arg-type]
            else:
                sent.append(uri)
                yield IngestItem(path=uri, **common)  # type: ignore[arg-type]

    progress = _progress(len(files), args.no_progress)
    started = time.perf_counter()
    try:
        try:
            async for outcome in api.ingest(items()):
                summary.counts[outcome.status] += 1
                summary.caption_pending += outcome.caption_pending
                if outcome.status is IngestStatus.FAILED:
                    where = outcome.uri or sent[outcome.index]
                    summary.failures.append((where, f"{outcome.reason} [{outcome.error_code}]"))
                progress.update(1)
        finally:
            progress.close()
            summary.seconds = time.perf_counter() - started
        _print_summary(summary, len(files))
        if args.with_captions and not args.no_wait_captions:
            await finish_captions(api, args.no_progress)
    finally:
        await api.close()
    return 0 if summary.counts[IngestStatus.FAILED] == 0 or args.allow_failures else 3


def _progress(total: int, disabled: bool, desc: str = "indexing") -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="img", desc=desc, disable=disabled, file=sys.stderr, smoothing=0.1
    )


async def finish_captions(api: GatewayAPI, no_progress: bool) -> None:
    """Waits for deferred captions: runs the backfill in embedded mode, or
    watches the gateway's own backfill through Stats."""
    from search_gateway.core import GatewayCore

    pending = (await api.stats()).caption_pending_count
    if not pending:
        return
    bar = _progress(pending, no_progress, "captioning")
    try:
        if isinstance(api, GatewayCore):
            report = await api.recaption(progress=bar.update)
            left = pending - report.captioned
        else:
            left = await _watch_pending(api, bar, pending)
    finally:
        bar.close()
    print(f"captioned {pending - left} images" + (f"; {left} still pending" if left else ""))
    if left:
        print("  run `imgsearch recaption` to retry them")


async def _watch_pending(api: GatewayAPI, bar: Any, pending: int, patience_s: float = 300) -> int:
    last_change = time.monotonic()
    while pending and time.monotonic() - last_change < patience_s:
        await asyncio.sleep(1.0)
        now = (await api.stats()).caption_pending_count
        if now < pending:
            bar.update(pending - now)
            last_change = time.monotonic()
        pending = now
    return pending


async def run_recaption(args: argparse.Namespace) -> int:
    # Embedded: the paths stored at indexing time are this machine's files.
    api = await open_api(args, read_roots=[Path("/")], captions=True)
    try:
        await finish_captions(api, args.no_progress)
    finally:
        await api.close()
    return 0


def _print_summary(s: IndexSummary, total: int) -> None:
    c = s.counts
    rate = total / s.seconds if s.seconds > 0 else 0.0
    print(f"indexed {total} images in {s.seconds:.1f} s ({rate:.1f} images/s)")
    print(
        f"  added {c[IngestStatus.ADDED]} · already present {c[IngestStatus.ALREADY_PRESENT]}"
        f" · duplicate {c[IngestStatus.DUPLICATE]} · failed {c[IngestStatus.FAILED]}"
    )
    if s.caption_pending:
        print(f"  {s.caption_pending} captions pending (run `imgsearch recaption` later)")
    if s.failures:
        print("failures:")
        for where, reason in s.failures:
            print(f"  {where}: {reason}")


# -- query / similar ---------------------------------------------------------------
def hits_as_json(query: str, hits: Sequence[Hit]) -> str:
    return json.dumps(
        {
            "query": query,
            "hits": [
                {
                    "rank": rank,
                    "id": h.id,
                    "score": round(h.score, 6),
                    "path": h.uri,
                    "caption": h.caption,
                    "payload": h.payload,
                }
                for rank, h in enumerate(hits, 1)
            ],
        },
        indent=2,
        default=str,
    )


def print_hits(hits: Sequence[Hit]) -> None:
    if not hits:
        print("no results")
        return
    print(f"{'rank':>4}  {'score':>6}  {'path':<50}  caption")
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>4}  {h.score:>6.3f}  {_short(h.uri, 50):<50}  {h.caption}")


def _short(path: str, width: int) -> str:
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            path = rel
    except ValueError:
        pass
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def _query_from(args: argparse.Namespace, **source: Any) -> SearchQuery:
    if args.k < 1:
        raise InvalidInput(f"-k must be at least 1, got {args.k}")
    if args.offset < 0:
        raise InvalidInput(f"--offset must be >= 0, got {args.offset}")
    return SearchQuery(
        k=args.k,
        offset=args.offset,
        score_threshold=args.threshold,
        filter=parse_filters(args.filter),
        mode=getattr(args, "mode", "vector"),
        **source,
    )


async def _search_and_show(args: argparse.Namespace, label: str, q: SearchQuery) -> int:
    api = await open_api(args)
    try:
        hits = await api.search(q)
    finally:
        await api.close()
    if args.json:
        print(hits_as_json(label, hits))
    else:
        print_hits(hits)
    if args.html:
        from search_gateway.gallery import write_gallery

        out = write_gallery(Path(args.html), label, hits, f"mode {q.mode}, k={q.k}")
        print(f"gallery written to {out}", file=sys.stderr)
    return 0


async def run_query(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    return await _search_and_show(args, text, _query_from(args, text=text))


async def run_similar(args: argparse.Namespace) -> int:
    if args.id:
        return await _search_and_show(
            args, f"similar to {args.id}", _query_from(args, point_id=args.id)
        )
    if not args.image:
        raise InvalidInput("give an image file or --id POINT_ID")
    data = Path(args.image).expanduser().read_bytes()
    return await _search_and_show(args, f"similar to {args.image}", _query_from(args, image=data))


# -- delete / stats / serve -----------------------------------------------------------
async def run_delete(args: argparse.Namespace) -> int:
    flt = parse_filters(args.filter)
    if not args.id and flt is None:
        raise InvalidInput("give --id (repeatable) or --filter")
    api = await open_api(args)
    try:
        deleted = await api.delete(args.id or (), None if args.id else flt)
    finally:
        await api.close()
    print(f"deleted {deleted} point{'s' if deleted != 1 else ''}")
    return 0


async def run_stats(args: argparse.Namespace) -> int:
    api = await open_api(args)
    try:
        s = await api.stats()
    finally:
        await api.close()
    if args.json:
        print(json.dumps(s.__dict__, indent=2))
    else:
        print(f"collection   {s.collection} ({s.store})")
        print(f"images       {s.count}")
        print(f"model        {s.model} / {s.pretrained or '-'} (dim {s.dimension})")
        print(f"captioned    {s.captioned_count} (pending {s.caption_pending_count})")
    return 0


async def run_serve(args: argparse.Namespace) -> int:
    from imgsearch.serving.server import run_until_signal
    from search_gateway.server import start_gateway_server

    settings = settings_from(args)
    overrides = {}
    if args.port is not None:
        overrides["port"] = args.port
    if args.host is not None:
        overrides["host"] = args.host
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    settings = settings.model_copy(update=overrides)
    server = await start_gateway_server(settings)
    print(f"imgsearch gateway listening on {settings.host}:{server.port}", file=sys.stderr)
    await run_until_signal(server.running, settings.grace_s, server.core.close)
    return 0


# -- parser ------------------------------------------------------------------------
def _connection_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    g = p.add_argument_group("where the index lives")
    g.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        default=default,
        help="use a running gateway instead of the embedded engine",
    )
    g.add_argument(
        "--api-key", default=default, help="key for the gateway [IMGSEARCH_GATEWAY_API_KEY]"
    )
    g.add_argument(
        "--tls-ca",
        default=default,
        help="CA (PEM) to trust for a TLS gateway [IMGSEARCH_GATEWAY_TLS_CA]",
    )
    g.add_argument("--data-dir", default=default, help="embedded index folder [IMGSEARCH_DATA_DIR]")
    g.add_argument("--collection", default=default, help="collection name [IMGSEARCH_COLLECTION]")
    g.add_argument("--qdrant-url", default=default, help="Qdrant server [IMGSEARCH_QDRANT_URL]")
    g.add_argument(
        "--model",
        default=default,
        help="CLIP model: ViT-B-32, hf-hub:..., config .json, offline-tiny [IMGSEARCH_MODEL]",
    )
    g.add_argument(
        "--pretrained", default=default, help="CLIP weights tag or file [IMGSEARCH_PRETRAINED]"
    )
    g.add_argument("--caption-model", default=default, help="BLIP model id/folder or offline-tiny")
    g.add_argument("--device", default=default, help="auto, cpu, cuda")
    g.add_argument(
        "--embedder", default=default, metavar="HOST:PORT", help="remote embedder service"
    )
    g.add_argument(
        "--captioner", default=default, metavar="HOST:PORT", help="remote captioner service"
    )
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0)


def _search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--offset", type=int, default=0, help="skip this many results (pagination)")
    p.add_argument("--threshold", type=float, default=None, help="drop results scoring below this")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="e.g. 'camera_id=7', 'ts>=2024-05-01', 'tags in (a,b)', "
        "'near=48.85,2.35,5km', 'caption~\"red jacket\"' (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML gallery")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgsearch",
        description="Natural-language image search: index folders, search by text, image or id.",
    )
    _connection_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _connection_options(p, suppress=True)
        return p

    p = command("index", "index every image under a folder (recursive, resumable)")
    p.add_argument("dir")
    p.add_argument("--with-captions", action="store_true", help="also caption images with BLIP")
    p.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata for every image, e.g. camera_id=7 tags=a,b (repeatable)",
    )
    p.add_argument(
        "--meta-jsonl",
        metavar="FILE",
        help='per-file metadata, JSON lines {"file": "rel/path.jpg", "metadata": {...}}',
    )
    p.add_argument(
        "--near-duplicates",
        type=float,
        metavar="COSINE",
        help="mark images this similar to a stored one as duplicate_of (e.g. 0.97)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="images per model batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-wait-captions",
        action="store_true",
        help="return once vectors are stored; captions fill in later",
    )
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some images fail")
    p.set_defaults(func=run_index)

    p = command("query", "search by text")
    p.add_argument("text", nargs="+")
    p.add_argument(
        "--mode",
        choices=["vector", "caption", "hybrid"],
        default="vector",
        help="vector (CLIP), caption (caption text) or hybrid (both, RRF)",
    )
    _search_options(p)
    p.set_defaults(func=run_query)

    p = command("similar", "search by an image file or an indexed image's id")
    p.add_argument("image", nargs="?")
    p.add_argument("--id", help="id of an indexed image ('more like this')")
    _search_options(p)
    p.set_defaults(func=run_similar)

    p = command("delete", "delete images by id or by filter")
    p.add_argument("--id", action="append", default=[], help="point id (repeatable)")
    p.add_argument("--filter", action="append", default=[], metavar="EXPR")
    p.set_defaults(func=run_delete)

    p = command("recaption", "caption images still marked caption_pending")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_recaption)

    p = command("stats", "describe the index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_stats)

    p = command("serve", "run the search gateway as a gRPC server")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None, help="default 50050 [IMGSEARCH_PORT]")
    p.add_argument("--metrics-port", type=int, default=None, help="default 9466; -1 disables")
    p.set_defaults(func=run_serve)

    from search_gateway.demo import add_demo_command

    add_demo_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "batch_size", None):
        os.environ["IMGSEARCH_INGEST_BATCH_SIZE"] = str(args.batch_size)
    level = (
        "DEBUG"
        if args.verbose >= 2
        else "INFO"
        if args.verbose or args.command == "serve"
        else "WARNING"
    )
    configure_logging(level)
    try:
        if getattr(args, "sync", False):
            return int(args.func(args))
        return asyncio.run(args.func(args))
    except d.InvalidFilter as exc:  # includes FilterSyntaxError with its caret line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImgsearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if exc.status_name == "INVALID_ARGUMENT" else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
