"""A thread in every Celery worker that fails the runs and jobs of workers that died.

A worker killed outright (SIGKILL, a lost machine) cannot mark its own run failed; the
run's heartbeat just stops. Every live worker therefore checks, every half heartbeat
timeout (at most once a minute), for runs and generation, label and merge jobs silent longer than
``RLHF_HEARTBEAT_TIMEOUT_S`` and fails them (:func:`rlhf.jobs.reaping.reap_stale`). With no
live worker, the next one to start does it first thing.

The thread runs in the worker's main process, which forks the pool's children; it opens
its own short-lived connections (no pool), so a child never inherits one in use.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from rlhf.jobs.polling import PollingThread
from rlhf.jobs.reaping import reap_stale
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)


def reap_interval(settings: Settings) -> float:
    return max(1.0, min(60.0, settings.heartbeat_timeout_s / 2))


class Reaper(PollingThread):
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        super().__init__("rlhf-reaper", reap_interval(self.settings), self.reap_once, first_wait=True)

    def reap_once(self) -> None:
        engine = sa.create_engine(self.settings.database_url, poolclass=NullPool)
        try:
            reap_stale(self.settings, engine)
        finally:
            engine.dispose()

    def stop(self, timeout: float | None = 5.0) -> None:
        super().stop(timeout)


_running: list[Reaper] = []


def start_on_worker_ready(**_kwargs) -> None:
    _running.append(Reaper().start())


def stop_on_worker_shutdown(**_kwargs) -> None:
    while _running:
        _running.pop().stop()
