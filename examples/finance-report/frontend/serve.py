"""Dev server for the local (process) runtime: the static files, and /api/* proxied to the backend."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

WWW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "www")
BACKEND = os.environ.get("BACKEND_URL", "http://127.0.0.1:8000")


class Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/api/"):
            self.proxy()
        else:
            super().do_GET()

    def do_POST(self) -> None:
        self.proxy()

    def proxy(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0)) or None
        request = urllib.request.Request(BACKEND + self.path, data=body, method=self.command,
                                         headers={"content-type": self.headers.get("content-type", "")})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        except OSError:
            status, data = 502, b'{"error": "backend unreachable"}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    port = int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(Handler, directory=WWW))
    print(f"frontend on http://127.0.0.1:{port}, /api -> {BACKEND}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
