"""A stand-in for the front door's content key route, for players run by the tests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandInFrontDoor:
    """A tiny HTTP server standing in for the front door's ``GET /keys/asset/{asset}/{key_id}``
    (a thread, so FFmpeg run synchronously can fetch from it): it answers the 16 bytes of the
    keys it is given (no box token: the real route's checks are the front door's tests),
    404 for any other path, and records the key ids it served."""

    def __init__(self, asset: str) -> None:
        self.keys: dict[str, bytes] = {}
        self.served: list[str] = []
        door = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                prefix = f"/keys/asset/{asset}/"
                key_id = self.path.removeprefix(prefix)
                key = door.keys.get(key_id) if self.path.startswith(prefix) else None
                if key is None:
                    self.send_error(404)
                    return
                door.served.append(key_id)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(key)))
                self.end_headers()
                self.wfile.write(key)

            def log_message(self, format: str, *args: object) -> None:
                del format, args  # quiet: FFmpeg's requests would fill the test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """CONTENT_KEY_BASE_URL pointing here."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
