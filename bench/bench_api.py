"""200 concurrent readers of `status` through the API while a deploy runs (issue 14).

    .venv/bin/python bench/bench_api.py [--readers 200] [--seconds 20]

A real `envplane serve` on this machine serves one registered app (busybox httpd) with one
preview running. `--readers` clients ask GET /api/v1/apps/{app}/status, each request with its
bearer token checked: for `--seconds` while nothing else happens, then while the API deploys
a second preview (a job). Each reader asks once every `--every` seconds (a dashboard's
refresh; default 1), then the same rounds back to back (the server's ceiling). Prints the
latency p50/p95/p99 and the requests answered, and how long the deploy took with and without
the readers. Target: p95 < 100 ms. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import own_proxy
from tests.api_kit import World, make_world, serving
from tests.support import ensure_busybox_image


class Reader:
    """One reader's keep-alive connection, speaking just enough HTTP/1.1 by hand: httpx costs
    the client more CPU per request than the server spends answering, and both share this
    machine's two cores."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self) -> int:
        if self.stream is None:
            self.stream = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.stream
        try:
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError):  # the server closed it: a new one next time
            self.close()
            raise
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.stream is not None:
            self.stream[1].close()
            self.stream = None


async def readers(base: str, world: World, count: int, until: asyncio.Event, seconds: float,
                  every: float) -> list[float]:
    """`count` clients asking for status until `until` is set (or `seconds` passed): each one
    once every `every` seconds (a dashboard's refresh), or back to back with `every` 0."""
    host, port = base.removeprefix("http://").split(":")
    request = (f"GET /api/v1/apps/{world.app}/status HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {world.tokens['reader']}\r\n\r\n").encode()
    latencies: list[float] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def one(n: int) -> None:
        reader = Reader(host, int(port), request)
        await asyncio.sleep(every * n / count)  # spread over the interval, as people are
        while not until.is_set() and time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                status = await reader.get()
                why = "" if status == 200 else f"HTTP {status}"
            except (OSError, asyncio.IncompleteReadError) as error:
                why = type(error).__name__
            took = time.perf_counter() - start
            latencies.append(took * 1000)
            if why:
                failures[why] = failures.get(why, 0) + 1
            if every:
                await asyncio.sleep(max(0.0, every - took))
        reader.close()

    await asyncio.gather(*(one(n) for n in range(count)))
    if failures:
        print(f"  (answers that were not 200: {failures})")
    return latencies


def figures(name: str, latencies: list[float], seconds: float) -> None:
    cuts = statistics.quantiles(latencies, n=100)
    print(f"{name}: p50 {statistics.median(latencies):.1f} ms, p95 {cuts[94]:.1f} ms, p99 {cuts[98]:.1f} ms, "
          f"max {max(latencies):.0f} ms; {len(latencies)} requests in {seconds:.1f} s "
          f"({len(latencies) / seconds:.0f}/s)", flush=True)


async def deploy(base: str, world: World, pr: int) -> float:
    """A preview up through the API, to its end; its seconds."""
    async with httpx.AsyncClient(base_url=base, headers=world.auth("ci"), timeout=600) as client:
        start = time.perf_counter()
        job = (await client.post(f"/api/v1/apps/{world.app}/previews", json={"pr": pr})).json()
        while (await client.get(f"/api/v1/jobs/{job['id']}")).json()["state"] == "running":
            await asyncio.sleep(0.2)
        state = (await client.get(f"/api/v1/jobs/{job['id']}")).json()["state"]
        if state != "ok":
            raise SystemExit(f"the deploy of PR {pr} ended {state}")
        return time.perf_counter() - start


async def rounds(base: str, world: World, count: int, seconds: float, every: float) -> None:
    how = f"each once every {every:g} s" if every else "back to back"
    never = asyncio.Event()
    await readers(base, world, 1, never, 0.5, 0.0)  # warm: the first answer asks the engine
    start = time.perf_counter()
    figures(f"{count} readers ({how}), nothing else running",
            await readers(base, world, count, never, seconds, every), time.perf_counter() - start)

    alone = await deploy(base, world, 3)
    world.cli("down", "test", "--pr", "3", "--purge")
    done = asyncio.Event()

    async def deploying() -> float:
        try:
            return await deploy(base, world, 2)
        finally:
            done.set()

    start = time.perf_counter()
    took, latencies = await asyncio.gather(deploying(), readers(base, world, count, done, 600, every))
    figures(f"{count} readers ({how}) while a preview deploys", latencies, time.perf_counter() - start)
    print(f"the deploy: {took:.1f} s with the readers, {alone:.1f} s without", flush=True)
    world.cli("down", "test", "--pr", "2", "--purge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=1.0,
                        help="seconds between one reader's requests (0: back to back)")
    args = parser.parse_args()
    ensure_busybox_image()
    with tempfile.TemporaryDirectory() as folder:
        world = make_world(Path(folder), environ=own_proxy(Path(folder) / "envplane-home"))
        try:
            assert world.cli("preview", "up", "--pr", "1").returncode == 0
            with serving(world) as served:
                try:
                    for every in (args.every, 0.0) if args.every else (0.0,):
                        asyncio.run(rounds(served.base, world, args.readers, args.seconds, every))
                finally:
                    said = [line for line in served.lines() if "INFO" not in line]
                    if said:
                        print("the server said:", *said[-20:], sep="\n  ")
        finally:
            for pr in ("1", "2", "3"):
                world.cli("down", "test", "--pr", pr, "--purge")
            world.cli("proxy", "down")


if __name__ == "__main__":
    main()
