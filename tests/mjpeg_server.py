"""A real MJPEG-over-HTTP stream (what many IP cameras serve) for the camera tests, on 127.0.0.1.

Each connection streams the given JPEG frames at ``fps`` and then closes, as a camera whose network drops
does; ``max_connections`` makes later connections fail, as a camera that is unplugged for good; ``pause_at``
stalls the stream for ``pause_s`` seconds before that frame, as a congested network does; ``outage_s`` refuses
connections for that long after each stream ends, as a camera that reboots does.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class MjpegServer:
    def __init__(
        self,
        frames: list[np.ndarray],
        fps: float = 100.0,
        max_connections: int | None = None,
        pause_at: int | None = None,
        pause_s: float = 0.0,
        outage_s: float = 0.0,
    ):
        import cv2

        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames]
        self.fps = fps
        self.max_connections = max_connections
        self.connections = 0
        self.refused = 0
        self.outage_s = outage_s
        self.down_until = 0.0  # time.monotonic() until which connections are refused
        self.back_at: list[float] = []  # when each outage ended (time.monotonic())
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if time.monotonic() < server.down_until:  # rebooting: not counted as a connection
                    server.refused += 1
                    self.send_error(503, "camera rebooting")
                    return
                server.connections += 1
                if server.max_connections is not None and server.connections > server.max_connections:
                    server.refused += 1
                    self.send_error(503, "camera offline")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i, jpg in enumerate(server.jpegs):
                        if i == pause_at:
                            time.sleep(pause_s)
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                        self.wfile.write(head + jpg + b"\r\n")
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if server.outage_s > 0:
                    server.down_until = time.monotonic() + server.outage_s
                    server.back_at.append(server.down_until)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
