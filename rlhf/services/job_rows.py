"""Worker jobs' one lifecycle: claim, heartbeat, finish, fail and reap, written once for every job table.

A *worker job* is a row a worker runs for a queued id: a training run, a generation job,
a label job or a merge job (and any worker job table added later, judge jobs). It moves
``queued → running → succeeded | failed | cancelled`` over the same columns (``status``,
``started_at``, ``finished_at``, ``heartbeat_at``, ``error``). The worker running it
touches ``heartbeat_at`` while it works (:mod:`rlhf.jobs.heartbeat` for jobs, the trainer's
tail for runs); a worker killed outright stops touching it, and any live worker's reaper
fails the job once it has been silent longer than ``RLHF_HEARTBEAT_TIMEOUT_S``
(:mod:`rlhf.jobs.reaping`). Every move is a conditional UPDATE on the status, so two
workers never both claim a job, and a worker that comes back after its job was reaped
cannot turn it into a success (its results are rolled back with the refused finish).

Only the tables that opt in, by a line in :data:`WORKER_JOBS`, have this lifecycle, and
every function here refuses any other table. A row that waits on people for days (an
autopilot round) is not a worker job: it has no heartbeat and must never be reaped, so
it stays out.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from rlhf.errors import Conflict, NotFound
from rlhf.models import (
    GenerationJob,
    JobStatus,
    JudgeJob,
    LabelJob,
    MergeJob,
    TrainingRun,
    as_utc,
    stored_id,
    utcnow,
)

# The tables that opt in to the lifecycle, and what one row is called in messages.
WORKER_JOBS: dict[type, str] = {
    TrainingRun: "run",
    GenerationJob: "generation job",
    LabelJob: "label job",
    MergeJob: "merge job",
    JudgeJob: "judge job",
}
# Bound, not constrained: a table only known as a JobTable gives a row of any of the four.
Job = TypeVar("Job", bound=TrainingRun | GenerationJob | LabelJob | MergeJob | JudgeJob)
JobTable = type[TrainingRun] | type[GenerationJob] | type[LabelJob] | type[MergeJob] | type[JudgeJob]


def what(table: type) -> str:
    """What one row of ``table`` is called; ``TypeError`` for a table that has not opted in."""
    try:
        return WORKER_JOBS[table]
    except KeyError:
        raise TypeError(f"{getattr(table, '__name__', table)} is not a worker job table (see WORKER_JOBS)") from None


def _names_its_worker(table: type) -> bool:
    return "worker" in sa.inspect(table).local_table.c


def get_job(*, session: Session, table: type[Job], job_id: int) -> Job:
    job = session.get(table, job_id)
    if job is None:
        raise NotFound(f"no {what(table)} {job_id}")
    return job


def queued_job_ids(*, session: Session, table: JobTable) -> list[int]:
    """The queued rows of ``table``, oldest first."""
    what(table)
    ids = session.exec(select(col(table.id)).where(col(table.status) == JobStatus.queued).order_by(col(table.id)))
    return [job_id for job_id in ids if job_id is not None]  # a key is never NULL: this only narrows the type


def claim_job(*, session: Session, table: JobTable, job_id: int, worker: str | None = None) -> bool:
    """Commits: atomically moves a queued job to running; False if another worker has it or it is done.

    The claim must be visible to every other worker before this one starts the work. A
    table with a ``worker`` column (runs) records who claimed it: ``worker``, else this host.
    """
    what(table)
    now = utcnow()
    values: dict[str, Any] = {"status": JobStatus.running, "started_at": now, "heartbeat_at": now}
    if _names_its_worker(table):
        values["worker"] = worker or socket.gethostname()
    result = session.exec(
        sa.update(table).where(col(table.id) == job_id, col(table.status) == JobStatus.queued).values(**values)
    )
    session.commit()
    return result.rowcount == 1


def beat(*, session: Session, table: JobTable, job_id: int, values: Mapping[str, Any] | None = None) -> bool:
    """Commits: marks a running job alive (others must see it now); False once it is no longer running.

    ``values`` are columns written with the heartbeat (a run's progress).
    """
    what(table)
    result = session.exec(
        sa.update(table)
        .where(col(table.id) == job_id, col(table.status) == JobStatus.running)
        .values(**(values or {}), heartbeat_at=utcnow())
    )
    session.commit()
    return result.rowcount == 1


def finish_job(
    *, session: Session, table: JobTable, job_id: int, status: JobStatus, error: str | None = None, **columns: Any
) -> None:
    """Ends a queued or running job; one already ended (the reaper failed it) raises ``Conflict``.

    ``columns`` are the job's other outcome columns (``result``; a run's ``metrics`` and
    ``output_checkpoint_id``); those left None, like ``error``, are not written. Called in
    the transaction that stores the job's output, so that output is rolled back with the
    refusal: a job reaped as dead never also leaves comparisons, labels or a checkpoint behind.
    """
    name = what(table)
    values: dict[str, Any] = {k: v for k, v in {**columns, "error": error}.items() if v is not None}
    values.update(status=status, finished_at=utcnow())
    unfinished = col(table.status).in_([JobStatus.queued, JobStatus.running])
    done = session.exec(
        sa.update(table)
        .where(col(table.id) == job_id, unfinished)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        job = get_job(session=session, table=table, job_id=job_id)
        raise Conflict(f"{name} {job_id} is {job.status.value}, already ended: {job.error or 'it was ended elsewhere'}")
    session.flush()
    session.expire_all()


def fail_job(*, session: Session, table: JobTable, job_id: int, error: str) -> bool:
    """Ends a job as failed with ``error``; False, keeping the first reason, if it had already ended."""
    try:
        finish_job(session=session, table=table, job_id=job_id, status=JobStatus.failed, error=error)
    except Conflict:
        return False
    return True


def reap_stale_jobs(*, session: Session, table: JobTable, timeout: timedelta) -> list[int]:
    """Fail running jobs whose worker stopped reporting (killed, machine lost): never stuck 'running'.

    Each job is failed by a conditional UPDATE on its heartbeat, so a heartbeat that lands
    between the read and the write keeps the job alive, and two reapers fail it once.
    """
    what(table)
    cutoff = utcnow() - timeout
    named = _names_its_worker(table)
    candidates = [
        (stored_id(j), j.heartbeat_at, getattr(j, "worker", None) if named else None)
        for j in _running(session, table)
        if (as_utc(j.heartbeat_at) or as_utc(j.started_at) or cutoff) < cutoff
    ]
    silence = f"stopped reporting (no heartbeat for {int(timeout.total_seconds())} s)"
    reaped: list[int] = []
    for job_id, heartbeat_at, worker in candidates:
        error = f"worker {worker or '?'} {silence}" if named else f"its worker {silence}"
        result = session.exec(
            sa.update(table)
            .where(
                col(table.id) == job_id,
                col(table.status) == JobStatus.running,
                col(table.heartbeat_at).is_(None) if heartbeat_at is None else col(table.heartbeat_at) == heartbeat_at,
            )
            .values(status=JobStatus.failed, finished_at=utcnow(), error=error)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            reaped.append(job_id)
    session.flush()
    session.expire_all()
    return reaped


def _running(session: Session, table: type[Job]) -> Sequence[Job]:
    # Generic over the table so the rows keep their type: a select of a union of tables reads as SQLModel.
    return session.exec(select(table).where(col(table.status) == JobStatus.running)).all()
