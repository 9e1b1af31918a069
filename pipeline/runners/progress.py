"""Live progress of a LocalDagRunner run: one line per component with its duration.

LocalDagRunner reports component starts and ends only as absl log records; this handler
turns those records into a short progress display and keeps the full log in a file.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO


class ComponentProgress(logging.Handler):
    def __init__(self, total: int, out: TextIO = sys.stdout):
        super().__init__(level=logging.INFO)
        self.total, self.out = total, out
        self.done = 0
        self.durations: dict[str, float] = {}
        self.cached: set[str] = set()
        self._current: str | None = None
        self._started = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg
        if message == "Component %s is running.":
            self._current, self._started = record.args[0], time.monotonic()
            print(f"[{self.done + 1}/{self.total}] {self._current} ...", file=self.out, flush=True)
        elif message == "A cached execution %d is used." and self._current:
            self.cached.add(self._current)
        elif message == "Component %s is finished.":
            node = record.args[0]
            self.done += 1
            seconds = time.monotonic() - self._started
            self.durations[node] = seconds
            outcome = "cached" if node in self.cached else "done"
            print(f"[{self.done}/{self.total}] {node} {outcome} in {seconds:.1f} s", file=self.out, flush=True)
            self._current = None

    @property
    def running(self) -> str | None:
        """The component that was running when the run stopped, if any."""
        return self._current
