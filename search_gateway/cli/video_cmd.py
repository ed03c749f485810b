"""Video files in `imgsearch index`, and `imgsearch watch URL --camera-id ID`.

Decoding runs here, in the CLI's process, for both embedded and `--gateway`
use (docs/decisions.md): frames go to the API as small images with their
metadata, so a video never travels as one message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_gateway.cli import shutdown
from search_gateway.media.ids import VIDEO_EXTENSIONS
from search_gateway.meta_syntax import parse_meta

if TYPE_CHECKING:
    from search_gateway.cli.connect import GatewayAPI


def find_videos(root: Path) -> list[Path]:
    """Video files under root, recursively, in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for name in sorted(filenames):
            if Path(name).suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def add_video_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--video-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="sample video files every this many seconds (default 1)",
    )
    p.add_argument(
        "--frame-change",
        type=float,
        default=None,
        metavar="COSINE",
        help="keep a frame only when its cosine to the last kept one is below this "
        "(default 0.95; 1 keeps every sampled frame)",
    )


async def index_videos(
    api: GatewayAPI,
    videos: list[Path],
    meta: dict[str, Any],
    sidecar: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    stop: asyncio.Event | None = None,
) -> int:
    """Indexes each video; prints one line per file. Returns the number of failed files.

    After `stop` is set (the first Ctrl-C) no more frames are sent: the frames
    in flight get shutdown.STOP_GRACE_S to be stored, the file's line says
    how far it got, and the videos not started are named.
    """
    from search_gateway.media.index_video import VideoIndexReport, index_video

    stop = stop or asyncio.Event()
    failed = 0
    for n, path in enumerate(videos):
        if stop.is_set():
            print(f"stopped: {len(videos) - n} video(s) not indexed; run again to continue")
            break
        uri = str(path)
        last = [-10.0]
        began = time.perf_counter()

        def progress(
            offset_s: float,
            frames: int,
            uri: str = uri,
            last: list[float] = last,
            began: float = began,
        ) -> None:
            if not args.no_progress and offset_s - last[0] >= 10:
                last[0] = offset_s
                fps = frames / max(time.perf_counter() - began, 1e-6)
                print(f"\r{uri}: {offset_s:.0f} s of video, {frames} frames ({fps:.1f}/s)",
                      end="", file=sys.stderr)  # fmt: skip

        report = VideoIndexReport(uri=uri)
        work = index_video(
            api, path, {**meta, **sidecar.get(uri, {})}, interval_s=args.video_interval,
            change_threshold=args.frame_change, uri=uri, progress=progress, stop=stop,
            report=report,
        )  # fmt: skip
        finished = await shutdown.run_until_stopped(work, stop, shutdown.STOP_GRACE_S)
        if not finished and not report.seconds:  # cancelled after the grace
            report.interrupted = True
            report.seconds = time.perf_counter() - began
        if not args.no_progress:
            print(file=sys.stderr)
        rate = report.covered_s / report.seconds if report.seconds > 0 else 0.0
        sampled = report.answered if report.interrupted else report.sampled
        print(
            f"{uri}: {report.covered_s:.0f} s of video in {report.seconds:.1f} s ({rate:.1f}x), "
            f"{sampled} frames sampled: {report.added} kept, {report.similar} similar, "
            f"{report.already_present} already present, {report.failed} failed"
            + (" (interrupted: frames answered so far are stored)" if report.interrupted else "")
        )
        for reason in report.failures[:5]:
            print(f"  {reason}")
        if report.error is not None or report.failed:
            failed += 1
            print(f"  FAILED: {report.error or 'some frames failed'}")
    return failed


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("watch", "index a live stream (RTSP, HTTP MJPEG, HLS) until Ctrl-C or SIGTERM")
    p.add_argument("url", help="what FFmpeg can open, e.g. rtsp://cam/stream or http://cam/mjpg")
    p.add_argument("--camera-id", required=True, help="stored as camera_id on every frame")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument(
        "--frame-change",
        type=float,
        default=None,
        metavar="COSINE",
        help="keep a frame only when its cosine to the last kept one is below this",
    )
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--max-failures",
        type=int,
        default=None,
        help="give up after this many failed reconnects in a row (default: never)",
    )
    p.set_defaults(func=run_watch)


async def _stop_when(stop: asyncio.Event, stream: Any) -> None:
    await stop.wait()
    stream.stop(0.0)


async def run_watch(args: argparse.Namespace) -> int:
    from search_gateway.cli.connect import open_api
    from search_gateway.media.stream import LiveStream
    from search_gateway.media.watch import watch

    stream = LiveStream(args.url, args.interval, max_failures=args.max_failures)
    # First Ctrl-C/SIGTERM: stop reading; what was handed over is still stored
    # before exiting. A second one quits at once (cli/shutdown.py).
    with shutdown.graceful(
        "stopping: storing the frames already read (Ctrl-C again to quit at once)"
    ) as stop:
        stopper = asyncio.ensure_future(_stop_when(stop, stream))
        api = await open_api(args)
        try:
            report = await watch(api, stream, args.camera_id, parse_meta(args.meta),
                                 args.frame_change)  # fmt: skip
        finally:
            stopper.cancel()
            await api.close()
    s = stream.stats
    print(
        f"{args.camera_id}: {report.added} frames stored, {report.similar} similar, "
        f"{report.failed} failed; {s.sampled} sampled, {s.dropped} dropped (behind), "
        f"{s.connects} connections"
    )
    if s.last_error and s.connects == 0:
        print(f"error: {s.last_error}", file=sys.stderr)
        return 1
    return 0 if report.failed == 0 else 3
