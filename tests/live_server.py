"""A live MJPEG camera served over HTTP on loopback, for the stream tests."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


class MjpegCamera:
    """multipart/x-mixed-replace JPEG frames at `fps`; `stall_after` frames then silence.

    `frame_fn(i)` draws frame i (i counts over the server's life, across clients).
    """

    def __init__(
        self,
        frame_fn: Callable[[int], Image.Image],
        fps: float = 10.0,
        stall_after: int | None = None,
        close_after: int | None = None,
    ) -> None:
        self.frame_fn = frame_fn
        self.fps = fps
        self.stall_after = stall_after
        self.close_after = close_after
        self.sent = 0
        self.clients = 0
        self._stop = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                camera.clients += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                n = 0
                while not camera._stop.is_set():
                    if camera.stall_after is not None and n >= camera.stall_after:
                        camera._stop.wait(0.2)
                        continue
                    if camera.close_after is not None and n >= camera.close_after:
                        return
                    buf = io.BytesIO()
                    camera.frame_fn(camera.sent).save(buf, format="JPEG", quality=85)
                    data = buf.getvalue()
                    try:
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(data)}\r\n\r\n".encode()
                            + data
                            + b"\r\n"
                        )
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    camera.sent += 1
                    n += 1
                    time.sleep(1 / camera.fps)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MjpegCamera:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
