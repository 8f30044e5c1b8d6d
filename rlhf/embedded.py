"""The embedded worker: with no broker configured, queued jobs run in this process.

It polls the database for queued generation jobs and training runs and executes them
one at a time with the same functions a Celery worker calls, so a laptop needs
nothing but the package. Claims are atomic, so it can share a database with others.
"""

from __future__ import annotations

import logging
import threading

from rlhf import db
from rlhf.execution import execute_run, reap_stale
from rlhf.generation import execute_generation_job
from rlhf.services.generation_jobs import queued_ids
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)


def work_once(settings: Settings | None = None) -> int:
    """Run every job queued now; returns how many ran."""
    settings = settings or get_settings()
    engine = db.get_engine(settings.database_url)
    reap_stale(settings, engine)
    with db.session_scope(engine) as session:
        gens, runs = queued_ids(session=session)
    done = 0
    for job_id in gens:
        done += execute_generation_job(job_id, settings) is not None
    for run_id in runs:
        done += execute_run(run_id, settings) is not None
    return done


class EmbeddedWorker:
    """A daemon thread running :func:`work_once` every ``interval`` seconds."""

    def __init__(self, settings: Settings | None = None, interval: float = 2.0):
        self.settings = settings or get_settings()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rlhf-embedded-worker", daemon=True)

    def start(self) -> "EmbeddedWorker":
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                work_once(self.settings)
            except Exception:  # keep serving; the failed job carries its own error
                log.exception("embedded worker iteration failed")
            self._stop.wait(self.interval)
