"""#14 dashboard: a log for a web page keeps up with its command (#7719: logs that freeze in
the browser): batches, a bounded backlog whose overflow is counted, masked lines, and a
command stopped when the page goes. Real processes (Python printing lines), no engine."""

from __future__ import annotations

import asyncio
import sys
import time

from envplane.secret import Secret
from envplane.server.log_stream import LOG_BATCH, LogSource


def printing(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_a_burst_comes_in_batches_and_a_slow_reader_gets_the_newest_lines() -> None:
    source = LogSource(printing("for i in range(1, 20001): print(f'line {i}')"), {}, [], backlog=3000)
    source._reader.join(30)  # the reader waited for nobody: the whole burst is read already
    lines, skipped = source.take()
    assert len(lines) == LOG_BATCH and skipped == 20000 - 3000
    assert lines[0] == "line 17001"  # what it kept is the newest part, in order
    rest = source.all()
    assert rest[-1] == "line 20000" and len(lines) + len(rest) == 3000
    source.close()


def test_every_line_is_masked() -> None:
    value = "hunter2 very/secret"
    source = LogSource(printing(f"import urllib.parse; v = {value!r}; print('password=' + v); "
                                "print(urllib.parse.quote(v, safe=''))"), {}, [Secret(value)])
    lines = source.all()
    source.close()
    assert lines == ["password=***", "***"]  # as written, and as a URL encodes it


def test_a_reader_in_the_event_loop_waits_for_lines_and_hears_the_end() -> None:
    source = LogSource(printing("import time; time.sleep(0.5); print('late', flush=True); time.sleep(0.5)"),
                       {}, [])

    async def read() -> list[str]:
        got: list[str] = []
        while True:
            lines, _ = await source.next(5.0)
            got += lines
            if source.ended and not lines:
                return got

    assert asyncio.run(read()) == ["late"]
    source.close()


def test_closing_stops_a_command_that_would_run_on() -> None:
    source = LogSource(printing("import time\nwhile True: print('tick', flush=True); time.sleep(0.1)"), {}, [])
    started = time.monotonic()
    source.close()
    assert source._process.poll() is not None and time.monotonic() - started < 10
