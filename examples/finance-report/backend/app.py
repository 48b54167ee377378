"""Finance Report API: a small real backend in the image of the seeds' app.

Standard library only, so it runs as a local process with no install; PostgreSQL
through psycopg 3 when DATABASE_URL says postgresql:// (imported only then).

GET  /api/health   -> 200 with the database's state after a real query, 503 if it fails
GET  /api/reports  -> the reports
POST /api/reports  -> add one: {"title": "...", "amount": 12.5}
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import checks  # beside this file: the object store and cache checks

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reports (id INTEGER PRIMARY KEY, title TEXT NOT NULL, amount REAL NOT NULL)"
)
PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reports "
    "(id SERIAL PRIMARY KEY, title TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL)"
)


def database_url() -> str:
    default = os.path.join(os.environ.get("DATA_PATH") or ".", "finance.db")
    return os.environ.get("DATABASE_URL") or f"sqlite:///{default}"


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"

    def connect(self) -> Any:
        if self.kind == "postgresql":
            import psycopg  # only a PostgreSQL deployment needs the driver

            return psycopg.connect(self.url, connect_timeout=3)
        path = self.url.removeprefix("sqlite:///")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return sqlite3.connect(path, timeout=3)

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "postgresql":
            sql = sql.replace("?", "%s")
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
            conn.commit()
            return list(rows)
        finally:
            conn.close()

    def migrate(self) -> None:
        self.run(PG_SCHEMA if self.kind == "postgresql" else SCHEMA)


DB = Database(database_url())
ENV = os.environ.get("DEPLOY_ENV", "unknown")
RELEASE = os.environ.get("ENVPLANE_RELEASE")  # set by `envplane release` and `promote`


def reason(exc: Exception) -> str:
    """One line a person can act on, with the URL's password masked should a driver echo it."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    password = urllib.parse.urlsplit(DB.url).password
    if password:
        first = first.replace(password, "***")
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def log(**fields: Any) -> None:
    print(json.dumps({"at": round(time.time(), 3), **fields}), flush=True)


class Handler(BaseHTTPRequestHandler):
    server_version = "finance-report"

    def do_GET(self) -> None:
        if self.path == "/api/health":
            self.health()
        elif self.path == "/api/reports":
            try:
                rows = DB.run("SELECT id, title, amount FROM reports ORDER BY id")
            except Exception as exc:
                self.unavailable(exc)
                return
            self.reply(200, [{"id": r[0], "title": r[1], "amount": r[2]} for r in rows])
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/api/reports":
            self.reply(404, {"error": "not found"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            title, amount = str(body["title"]), float(body["amount"])
        except (ValueError, KeyError, TypeError):
            self.reply(400, {"error": "send {\"title\": str, \"amount\": number}"})
            return
        try:
            DB.run("INSERT INTO reports (title, amount) VALUES (?, ?)", (title, amount))
        except Exception as exc:
            self.unavailable(exc)
            return
        self.reply(201, {"title": title, "amount": amount})

    def health(self) -> None:
        try:
            DB.migrate()
            [(one,)] = DB.run("SELECT 1")
            [(count,)] = DB.run("SELECT COUNT(*) FROM reports")
        except Exception as exc:  # any failure of the database is the answer, not a crash
            self.unavailable(exc)
            return
        report: dict[str, Any] = {"env": ENV, "release": RELEASE,
                                  "database": {"ok": one == 1, "kind": DB.kind, "reports": count}}
        for name, check in (("storage", checks.storage), ("cache", checks.cache)):
            found = check()
            if found is not None:
                report[name] = found
        healthy = all(part["ok"] for part in report.values() if isinstance(part, dict))
        self.reply(200 if healthy else 503, {"status": "ok" if healthy else "error", **report})

    def unavailable(self, exc: Exception) -> None:
        log(event="database error", path=self.path, error=reason(exc))
        self.reply(503, {"status": "error", "env": ENV,
                         "database": {"ok": False, "kind": DB.kind, "error": reason(exc)}})

    def reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log(method=self.command, path=self.path, status=int(code) if str(code).isdigit() else code,
            client=self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:
        log(message=format % args)


def main() -> None:
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop at once when asked
    try:
        DB.migrate()
    except Exception as exc:  # start anyway; /api/health says what is wrong
        log(event="database unavailable", error=reason(exc))
    log(event="listening", host=host, port=port, env=ENV, database=DB.kind)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
