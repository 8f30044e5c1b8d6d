"""A running generation or label job tells the database it is alive, from a thread beside the work.

Sampling and scoring run in this process (or wait on an inference engine) for minutes with
no natural point to report from, so a daemon thread touches the job's ``heartbeat_at``
every quarter of ``RLHF_HEARTBEAT_TIMEOUT_S``. The thread dies with its worker: a worker
killed outright leaves a silent job, which the reaper fails (:mod:`rlhf.services.job_rows`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rlhf import db
from rlhf.jobs.polling import PollingThread
from rlhf.services.job_rows import JobTable, beat
from rlhf.settings import Settings


def beat_interval(settings: Settings) -> float:
    """Four beats per timeout: one late beat (a slow database) does not get a live job reaped."""
    return max(0.5, min(30.0, settings.heartbeat_timeout_s / 4))


@contextmanager
def beating(engine, settings: Settings, table: JobTable, job_id: int) -> Iterator[None]:
    def once() -> None:
        with db.session_scope(engine) as session:
            beat(session=session, table=table, job_id=job_id)

    thread = PollingThread(f"rlhf-heartbeat-{table.__name__}-{job_id}", beat_interval(settings), once,
                           first_wait=True).start()
    try:
        yield
    finally:
        thread.stop(timeout=5.0)
