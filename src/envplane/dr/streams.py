"""Envplane's own end of a pipeline: a thread that writes into a process's stdin."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import IO

from envplane.dr.manifest import Part
from envplane.errors import BackendError, EnvplaneError


class Feeder(threading.Thread):
    """Runs `produce(sink)` and closes the sink; `check()` re-raises what went wrong."""

    def __init__(self, sink: IO[bytes], produce: Callable[[IO[bytes]], object]) -> None:
        super().__init__(daemon=True)
        self.sink, self.produce = sink, produce
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.produce(self.sink)
        except BaseException as exc:  # reported by check(), in the caller's thread
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                self.sink.close()

    def check(self) -> None:
        self.join()
        if self.error is None or isinstance(self.error, BrokenPipeError):
            return  # a closed pipe: the stage that went away says why (Pipeline.finish)
        if isinstance(self.error, EnvplaneError):
            raise self.error
        raise BackendError(f"{type(self.error).__name__}: {self.error}")


def checked_chunks(chunks: Iterator[bytes], part: Part) -> Callable[[IO[bytes]], None]:
    """A producer writing a stored part's chunks, each checked again as it passes."""
    def produce(sink: IO[bytes]) -> None:
        for index, (data, want) in enumerate(zip(chunks, part.chunks, strict=False)):
            if len(data) != want.size or hashlib.sha256(data).hexdigest() != want.sha256:
                raise BackendError(f"part {part.kind} ({part.key}), chunk {index + 1} changed while "
                                   "it was being restored")
            sink.write(data)

    return produce
