"""Worker job rows (generation and label jobs): one claim, heartbeat, finish and reap for both.

A job row moves ``queued → running → succeeded | failed``. The worker running it touches
``heartbeat_at`` while it works (:mod:`rlhf.jobs.heartbeat`); a worker killed outright
stops touching it, and any live worker's reaper fails the job once it has been silent
longer than ``RLHF_HEARTBEAT_TIMEOUT_S``, as it does training runs. Every move is a
conditional UPDATE on the status, so a worker that comes back after its job was reaped
cannot turn it into a success (its results are rolled back with the refused finish).
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from rlhf.errors import Conflict, NotFound
from rlhf.models import GenerationJob, JobStatus, LabelJob, as_utc, utcnow

JobTable = type[GenerationJob] | type[LabelJob]
WHAT = {GenerationJob: "generation job", LabelJob: "label job"}


def get_job(*, session: Session, table: JobTable, job_id: int):
    job = session.get(table, job_id)
    if job is None:
        raise NotFound(f"no {WHAT[table]} {job_id}")
    return job


def claim_job(*, session: Session, table: JobTable, job_id: int) -> bool:
    """Commits: atomically moves a queued job to running; False if another worker has it or it is done."""
    now = utcnow()
    result = session.execute(sa.update(table).where(table.id == job_id, table.status == JobStatus.queued)
                             .values(status=JobStatus.running, started_at=now, heartbeat_at=now))
    session.commit()
    return result.rowcount == 1


def beat(*, session: Session, table: JobTable, job_id: int) -> bool:
    """Commits: marks a running job alive; False once it is no longer running (reaped or finished)."""
    result = session.execute(sa.update(table).where(table.id == job_id, table.status == JobStatus.running)
                             .values(heartbeat_at=utcnow()))
    session.commit()
    return result.rowcount == 1


def finish_job(*, session: Session, table: JobTable, job_id: int, status: JobStatus, result: dict | None = None,
               error: str | None = None) -> None:
    """Ends a queued or running job; one already ended (the reaper failed it) raises ``Conflict``.

    Called in the transaction that stores the job's output, so that output is rolled back
    with the refusal: a job reaped as dead never also leaves comparisons or labels behind.
    """
    values: dict = {"status": status, "finished_at": utcnow(), "error": error}
    if result:
        values["result"] = result
    unfinished = table.status.in_([JobStatus.queued, JobStatus.running])
    done = session.execute(sa.update(table).where(table.id == job_id, unfinished)
                           .values(**values).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        job = get_job(session=session, table=table, job_id=job_id)
        raise Conflict(f"{WHAT[table]} {job_id} is {job.status.value}, already ended: "
                       f"{job.error or 'it was ended elsewhere'}")
    session.flush()
    session.expire_all()


def reap_stale_jobs(*, session: Session, table: JobTable, timeout: timedelta) -> list[int]:
    """Fail running jobs whose worker stopped reporting; the same conditional UPDATE as for runs."""
    cutoff = utcnow() - timeout
    candidates = [(j.id, j.heartbeat_at) for j in session.exec(select(table).where(table.status == JobStatus.running))
                  if (as_utc(j.heartbeat_at) or as_utc(j.started_at) or cutoff) < cutoff]
    error = f"its worker stopped reporting (no heartbeat for {int(timeout.total_seconds())} s)"
    reaped = []
    for job_id, heartbeat_at in candidates:
        result = session.execute(
            sa.update(table)
            .where(table.id == job_id, table.status == JobStatus.running,
                   table.heartbeat_at.is_(None) if heartbeat_at is None else table.heartbeat_at == heartbeat_at)
            .values(status=JobStatus.failed, finished_at=utcnow(), error=error)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            reaped.append(job_id)
    session.flush()
    session.expire_all()
    return reaped


def fail_job(*, session: Session, table: JobTable, job_id: int, error: str) -> bool:
    """Ends a job as failed with ``error``; False, keeping the first reason, if it had already ended."""
    try:
        finish_job(session=session, table=table, job_id=job_id, status=JobStatus.failed, error=error)
    except Conflict:
        return False
    return True
