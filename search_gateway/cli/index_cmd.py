"""`imgsearch index DIR` and `imgsearch recaption`."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway.cli import shutdown
from search_gateway.cli.connect import GatewayAPI, abandon_models, open_api
from search_gateway.cli.enrich import enrich
from search_gateway.cli.files import IMAGE_EXTENSIONS, find_images, load_sidecar
from search_gateway.cli.output import IndexSummary, notice, print_index_summary, progress
from search_gateway.cli.shutdown import EXIT_INTERRUPTED, STOP_GRACE_S, run_until_stopped
from search_gateway.cli.video_cmd import add_video_options, find_videos, index_videos
from search_gateway.ingest import IngestItem, IngestStatus
from search_gateway.meta_syntax import parse_meta

VIDEO_STOPPING = "stopping: storing the frames already sent (Ctrl-C again to quit at once)"


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
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
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per model batch [IMGSEARCH_INGEST_BATCH_SIZE]",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-wait-captions",
        action="store_true",
        help="return once vectors are stored; captions fill in later",
    )
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some images fail")
    add_video_options(p)
    p.set_defaults(func=run_index)

    p = command("recaption", "caption images still marked caption_pending")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_recaption)


async def run_index(args: argparse.Namespace) -> int:
    root = Path(args.dir).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInput(f"{args.dir}: not a folder")
    files = find_images(root)
    videos = find_videos(root)
    if not files and not videos:
        print(f"no images under {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return 0
    meta = parse_meta(args.meta)
    sidecar = load_sidecar(Path(args.meta_jsonl)) if args.meta_jsonl else {}
    if not files:  # videos only
        with shutdown.graceful(VIDEO_STOPPING) as stop:
            api = await open_api(args, read_roots=[root])
            try:
                bad = await index_videos(api, videos, meta, sidecar, args, stop)
                if stop.is_set():
                    abandon_models(api)
            finally:
                await api.close()
        if stop.is_set():
            return EXIT_INTERRUPTED
        return 0 if bad == 0 or args.allow_failures else 3
    for line in unmatched_sidecar_lines(sidecar, files + videos):
        notice(f"warning: {line}")
    api = await open_api(args, read_roots=[root], captions=args.with_captions)
    summary = IndexSummary()
    bad_videos = 0
    sent: list[tuple[str, dict[str, Any]]] = []
    present: list[tuple[str, dict[str, Any]]] = []
    remote = bool(args.gateway)
    with shutdown.graceful(
        "stopping: finishing the images (or video frames) in flight "
        "(Ctrl-C again to quit at once)"
    ) as stop:

        async def items() -> AsyncIterator[IngestItem]:
            for path in files:
                if stop.is_set():
                    return
                uri = str(path)
                item_meta = {**meta, **sidecar.get(uri, {})}
                common = dict(
                    uri=uri,
                    metadata=item_meta,
                    with_captions=args.with_captions,
                    near_duplicate_threshold=args.near_duplicates or 0.0,
                )
                if remote:  # the gateway cannot see this machine's files: send bytes
                    try:  # (and the mtime, the gateway's last resort for the time)
                        data, mtime = await asyncio.to_thread(read_with_mtime, path)
                    except OSError as exc:
                        summary.counts[IngestStatus.FAILED] += 1
                        summary.failures.append((uri, f"cannot read: {exc.strerror}"))
                        bar.update(1)
                        continue
                    sent.append((uri, item_meta))
                    yield IngestItem(data=data, file_mtime=mtime, **common)  # type: ignore[arg-type]
                else:
                    sent.append((uri, item_meta))
                    yield IngestItem(path=uri, **common)  # type: ignore[arg-type]

        async def consume() -> None:
            async for outcome in api.ingest(items()):
                summary.record(outcome)
                if outcome.status is IngestStatus.FAILED:
                    where = outcome.uri or sent[outcome.index][0]
                    summary.failures.append((where, f"{outcome.reason} [{outcome.error_code}]"))
                elif outcome.status is IngestStatus.ALREADY_PRESENT:
                    present.append((outcome.id, sent[outcome.index][1]))
                bar.update(1)

        bar = progress(len(files), args.no_progress)
        started = time.perf_counter()
        try:
            summary.interrupted = not await run_until_stopped(consume(), stop, STOP_GRACE_S)
        finally:
            bar.close()
            summary.seconds = time.perf_counter() - started
        try:
            if summary.interrupted:
                abandon_models(api)
            else:
                summary.enriched = await enrich(api, present, args.with_captions)
            print_index_summary(summary, len(files))
            if videos and summary.interrupted:
                print(f"stopped: {len(videos)} video(s) not indexed; run again to continue")
            if videos and not summary.interrupted:
                bad_videos = await index_videos(api, videos, meta, sidecar, args, stop)
                if stop.is_set():  # Ctrl-C during the videos
                    summary.interrupted = True
                    abandon_models(api)
            waits = args.with_captions and not args.no_wait_captions
            if waits and not summary.interrupted:
                await finish_captions(api, args.no_progress)
        finally:
            await api.close()
    if summary.interrupted:
        return EXIT_INTERRUPTED
    ok = summary.counts[IngestStatus.FAILED] == 0 and bad_videos == 0
    return 0 if ok or args.allow_failures else 3


def read_with_mtime(path: Path) -> tuple[bytes, float]:
    """A file's bytes and the modification time of what was read."""
    with path.open("rb") as f:
        return f.read(), os.fstat(f.fileno()).st_mtime


def unmatched_sidecar_lines(sidecar: dict[str, dict[str, Any]], files: list[Path]) -> list[str]:
    """One warning per sidecar entry that names no image found under the folder."""
    found = {str(f) for f in files}
    return [
        f"--meta-jsonl names {name}, which is not an image under the folder: its metadata is unused"
        for name in sidecar
        if name not in found
    ]


async def finish_captions(api: GatewayAPI, no_progress: bool) -> None:
    """Waits for deferred captions: runs the backfill in embedded mode, or
    watches the gateway's own backfill through Stats."""
    from search_gateway.core import GatewayCore

    pending = (await api.stats()).caption_pending_count
    if not pending:
        return
    bar = progress(pending, no_progress, "captioning")
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
