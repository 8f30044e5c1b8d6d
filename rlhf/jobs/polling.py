"""A daemon thread that calls one function every few seconds until stopped.

The embedded worker and every Celery worker's reaper are this loop; an exception in one
call is logged and the next call comes on time (the database may be down for a while).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PollingThread:
    def __init__(self, name: str, interval: float, call: Callable[[], object], *, first_wait: bool = False):
        self.name, self.interval, self.call, self.first_wait = name, interval, call, first_wait
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "PollingThread":
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        if self.first_wait and self._stop.wait(self.interval):
            return
        while not self._stop.is_set():
            try:
                self.call()
            except Exception as exc:  # keep polling; a failed job carries its own error
                log.warning("%s: %s: %s", self.name, type(exc).__name__, exc, exc_info=True)
            self._stop.wait(self.interval)
