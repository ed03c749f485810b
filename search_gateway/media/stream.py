"""Live streams (RTSP, HTTP MJPEG, HLS: whatever FFmpeg opens) sampled in real time.

A reader thread owns the connection: it decodes, samples a frame every
`interval_s` of wall-clock time and hands it over through a small bounded
buffer. Why this shape:

* **Never fall behind.** A live source does not wait. When the consumer
  (embedding, storing) is slower than the sampling rate, the *oldest* buffered
  frame is dropped and counted (`stats.dropped`), so what is indexed stays
  current and memory stays bounded. When decoding itself lags the stream by
  more than `max_lag_s`, the decoder skips non-keyframes until it catches up
  (`stats.skipped_decode`).
* **Reconnect with backoff.** A failed open, a stall (no packet for
  `read_timeout_s`) or the end of the stream closes the connection and retries
  after 0.5 s, 1 s, 2 s ... capped at `max_backoff_s`; a frame received resets
  the backoff. `max_failures` consecutive failures end the watch with
  `stats.last_error`.
* **Clean stop.** `stop()` (Ctrl-C or SIGTERM in the CLI) ends the reader
  within `read_timeout_s`; frames already handed over are still returned by
  `frames()`, so the caller stores everything it has acknowledged.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import av
from PIL import Image

from search_gateway.media.video import FRAME_SIDE, to_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveFrame:
    """A sampled live frame: when it was received (UTC) and its pixels."""

    received_at: datetime
    image: Image.Image
    sequence: int  # 0, 1, 2 ... over the whole watch, across reconnects


@dataclass
class StreamStats:
    decoded: int = 0
    sampled: int = 0
    dropped: int = 0  # sampled but dropped because the consumer was behind
    skipped_decode: int = 0  # non-keyframes skipped because decoding lagged
    connects: int = 0
    failures: int = 0
    last_error: str | None = None


class LiveStream:
    """Samples a live source in a background thread; iterate `frames()` to consume."""

    def __init__(
        self,
        url: str,
        interval_s: float = 1.0,
        *,
        max_side: int = FRAME_SIDE,
        buffer: int = 8,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
        max_failures: int | None = None,
        max_lag_s: float = 2.0,
        options: dict[str, str] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"sampling interval must be > 0 s, got {interval_s}")
        self.url = url
        self.interval_s = interval_s
        self.max_side = max_side
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_backoff_s = max_backoff_s
        self.max_failures = max_failures
        self.max_lag_s = max_lag_s
        self.options = dict(options or {})
        if url.startswith("rtsp"):
            self.options.setdefault("rtsp_transport", "tcp")
        self.stats = StreamStats()
        self._buf: collections.deque[LiveFrame] = collections.deque(maxlen=buffer)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live:{url}", daemon=True)

    def start(self) -> LiveStream:
        self._thread.start()
        return self

    def stop(self, wait_s: float | None = None) -> None:
        """Asks the reader to stop; waits up to `wait_s` (default: the read timeout + 1 s)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(self.read_timeout_s + 1 if wait_s is None else wait_s)

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def frames(self, poll_s: float = 0.5) -> Iterator[LiveFrame]:
        """Sampled frames as they come; ends once the reader stopped and the buffer is empty."""
        while True:
            with self._cond:
                while not self._buf and not self._done.is_set():
                    self._cond.wait(poll_s)
                if self._buf:
                    frame = self._buf.popleft()
                elif self._done.is_set():
                    return
                else:
                    continue
            yield frame

    def _hand_over(self, frame: LiveFrame) -> None:
        with self._cond:
            if len(self._buf) == self._buf.maxlen:
                self.stats.dropped += 1  # the deque drops the oldest on append
            self._buf.append(frame)
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0.5
        failures = 0
        try:
            while not self._stop.is_set():
                got_frames = self._connect_once()
                if self._stop.is_set():
                    break
                if got_frames:
                    backoff, failures = 0.5, 0
                else:
                    failures += 1
                    self.stats.failures += 1
                if self.max_failures is not None and failures >= self.max_failures:
                    log.warning("giving up on %s after %d failures: %s", self.url, failures,
                                self.stats.last_error)
                    break
                log.info("reconnecting to %s in %.1f s (%s)", self.url, backoff,
                         self.stats.last_error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        finally:
            self._done.set()
            with self._cond:
                self._cond.notify_all()

    def _connect_once(self) -> bool:
        """One connection: decode until error, end or stop. True if a frame came."""
        decoded_before = self.stats.decoded
        try:
            container = av.open(
                self.url,
                mode="r",
                options=self.options,
                timeout=(self.open_timeout_s, self.read_timeout_s),
            )
        except (av.FFmpegError, OSError) as exc:
            self.stats.last_error = f"cannot open: {exc}"
            return False
        self.stats.connects += 1
        try:
            if not container.streams.video:
                self.stats.last_error = "no video stream"
                return False
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            self._decode(container, stream)
            if not self._stop.is_set():
                self.stats.last_error = "stream ended"
        except (av.FFmpegError, OSError) as exc:
            self.stats.last_error = f"read failed: {exc}"
        finally:
            container.close()
        return self.stats.decoded > decoded_before

    def _decode(self, container: Any, stream: Any) -> None:
        ctx = stream.codec_context
        wall0 = time.monotonic()
        pts0: float | None = None
        next_sample = 0.0
        for packet in container.demux(stream):
            if self._stop.is_set():
                break
            if packet.size == 0:
                continue
            for frame in stream.decode(packet):
                self.stats.decoded += 1
                now = time.monotonic()
                if frame.time is not None:
                    pts0 = frame.time if pts0 is None else pts0
                    lag = (now - wall0) - (frame.time - pts0)
                    skip = "NONKEY" if lag > self.max_lag_s else "DEFAULT"
                    if str(ctx.skip_frame) != skip:
                        ctx.skip_frame = skip
                if now >= next_sample:
                    next_sample = now + self.interval_s
                    seq = self.stats.sampled
                    self.stats.sampled += 1
                    image = to_image(frame, self.max_side)
                    self._hand_over(LiveFrame(datetime.now(timezone.utc), image, seq))
            if str(ctx.skip_frame) == "NONKEY" and not packet.is_keyframe:
                self.stats.skipped_decode += 1
