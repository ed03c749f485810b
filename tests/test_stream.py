"""Live streams: an MJPEG camera served on loopback by the test itself."""

from __future__ import annotations

import socket
import time

from PIL import Image

from search_gateway.media.stream import LiveStream
from tests.live_server import MjpegCamera


def _frame(i: int) -> Image.Image:
    return Image.new("RGB", (160, 120), ((i * 9) % 255, 40, 90))


def _take(stream: LiveStream, seconds: float, slow_s: float = 0.0) -> list[int]:
    got: list[int] = []
    t0 = time.monotonic()
    for frame in stream.frames(poll_s=0.1):
        got.append(frame.sequence)
        assert max(frame.image.size) <= 384
        assert frame.received_at.tzinfo is not None
        if slow_s:
            time.sleep(slow_s)
        if time.monotonic() - t0 > seconds:
            stream.stop()
    return got


def test_samples_live_mjpeg_and_stops_cleanly() -> None:
    with MjpegCamera(_frame, fps=20) as cam:
        stream = LiveStream(cam.url, interval_s=0.25, read_timeout_s=2).start()
        t0 = time.monotonic()
        got = _take(stream, 2.0)
        assert time.monotonic() - t0 < 2.0 + 3.5  # stop() ends the reader within the timeout
        assert not stream.running
    assert len(got) >= 4
    assert got == sorted(got) and len(set(got)) == len(got)
    assert stream.stats.decoded > stream.stats.sampled >= len(got)
    assert stream.stats.dropped == 0 and stream.stats.connects == 1


def test_slow_consumer_drops_oldest_and_counts() -> None:
    with MjpegCamera(_frame, fps=25) as cam:
        stream = LiveStream(cam.url, interval_s=0.04, buffer=2, read_timeout_s=2).start()
        got = _take(stream, 2.0, slow_s=0.3)
    assert stream.stats.dropped > 0
    # Nothing is queued without bound: everything sampled was consumed or counted as dropped
    # (the last few may still sit in the two-frame buffer when the reader stopped).
    assert stream.stats.sampled - stream.stats.dropped - len(got) <= 2
    assert got == sorted(got)


def test_reconnects_after_the_server_closes_and_after_a_stall() -> None:
    with MjpegCamera(_frame, fps=20, close_after=10) as cam:
        stream = LiveStream(cam.url, interval_s=0.1, read_timeout_s=1).start()
        _take(stream, 3.0)
    assert stream.stats.connects >= 2 and stream.stats.sampled >= 10
    with MjpegCamera(_frame, fps=20, stall_after=5) as cam:
        stream = LiveStream(cam.url, interval_s=0.1, read_timeout_s=1).start()
        _take(stream, 4.0)
    assert stream.stats.connects >= 2  # the stall was noticed and the stream reopened
    assert cam.clients >= 2


def test_unreachable_stream_gives_up_with_a_reason() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    stream = LiveStream(
        f"http://127.0.0.1:{port}/cam", open_timeout_s=1, read_timeout_s=1, max_failures=3,
        max_backoff_s=0.2,
    ).start()
    assert list(stream.frames(poll_s=0.1)) == []
    assert not stream.running
    assert stream.stats.failures == 3 and stream.stats.connects == 0
    assert stream.stats.last_error is not None and "cannot open" in stream.stats.last_error
