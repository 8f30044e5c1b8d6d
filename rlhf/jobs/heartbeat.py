"""Running a generation or label job: claim it, keep telling the database it is alive, record a failure.

Sampling and scoring run in this process (or wait on an inference engine) for minutes with
no natural point to report from, so a daemon thread touches the job's ``heartbeat_at``
every quarter of ``RLHF_HEARTBEAT_TIMEOUT_S``. The thread dies with its worker: a worker
killed outright leaves a silent job, which the reaper fails (the lifecycle every worker job
shares, :mod:`rlhf.services.job_rows`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rlhf import db
from rlhf.errors import failure_reason
from rlhf.jobs.polling import PollingThread
from rlhf.models import JobStatus
from rlhf.services.job_rows import JobTable, beat, claim_job, fail_job, what
from rlhf.settings import Settings

log = logging.getLogger(__name__)


def beat_interval(settings: Settings) -> float:
    """Four beats per timeout: one late beat (a slow database) does not get a live job reaped."""
    return max(0.5, min(30.0, settings.heartbeat_timeout_s / 4))


def run_job(table: JobTable, job_id: int, settings: Settings, work: Callable[[object], object]) -> JobStatus | None:
    """Claim a queued job and do ``work(engine)`` while it beats; None if another worker has it.

    ``work`` ends the job itself, in the transaction that stores its output
    (:func:`rlhf.services.job_rows.finish_job`); if it raises, the job is failed with the
    reason and the worker lives on.
    """
    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as session:
        if not claim_job(session=session, table=table, job_id=job_id):
            return None
    with _beating(engine, settings, table, job_id):
        try:
            work(engine)
        except Exception as exc:  # a failed job records why; the worker lives on
            log.exception("%s %s failed", what(table), job_id)
            with db.session_scope(engine) as session:
                fail_job(session=session, table=table, job_id=job_id, error=failure_reason(exc))
            return JobStatus.failed
    return JobStatus.succeeded


@contextmanager
def _beating(engine, settings: Settings, table: JobTable, job_id: int) -> Iterator[None]:
    def once() -> None:
        with db.session_scope(engine) as session:
            beat(session=session, table=table, job_id=job_id)

    thread = PollingThread(
        f"rlhf-heartbeat-{table.__name__}-{job_id}", beat_interval(settings), once, first_wait=True
    ).start()
    try:
        yield
    finally:
        thread.stop(timeout=5.0)
