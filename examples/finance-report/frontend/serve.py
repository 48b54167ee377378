"""Dev server for the local (process) runtime: the static files, and /api/* proxied to the backend.

Standard library only. In containers the frontend is busybox httpd and the env's router sends
/api to the backend; here this server plays the router's part.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

WWW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "www")
BACKEND = os.environ.get("BACKEND_URL", "http://127.0.0.1:8000").rstrip("/")


class Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/api/"):
            self.proxy()
        else:
            super().do_GET()

    def do_POST(self) -> None:
        if self.path.startswith("/api/"):
            self.proxy()
        else:
            self.send_error(405)

    def proxy(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0)) or None
        request = urllib.request.Request(BACKEND + self.path, data=body, method=self.command,
                                         headers={"content-type": self.headers.get("content-type", "")})
        content_type = "application/json"
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, data = response.status, response.read()
                content_type = response.headers.get("content-type", content_type)
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        except OSError as exc:
            status, data = 502, f'{{"error": "backend unreachable: {type(exc).__name__}"}}'.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer((host, port), partial(Handler, directory=WWW))
    print(f"frontend on http://{host}:{port}, /api -> {BACKEND}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
