"""Generation jobs: rows that say which prompts to sample, from what, and how it went."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from rlhf.errors import InvalidInput, NotFound
from rlhf.models import GenerationJob, JobStatus, utcnow
from rlhf.services.checkpoints import serving_checkpoints


def create_generation_job(*, session: Session, per_checkpoint: int | None = None, limit: int | None = None,
                          target_votes: int = 1, strategy: str = "random", tag: str | None = None,
                          seed: int | None = None, sampling: dict[str, Any] | None = None) -> GenerationJob:
    if not serving_checkpoints(session=session):
        raise InvalidInput("no serving checkpoint to sample from: `rlhf checkpoints serve ID` first")
    if per_checkpoint is not None and per_checkpoint < 1:
        raise InvalidInput("--per-checkpoint must be at least 1")
    if limit is not None and limit < 1:
        raise InvalidInput("--limit must be at least 1")
    if target_votes < 1:
        raise InvalidInput("target votes per comparison must be at least 1")
    if strategy not in ("random",):
        raise InvalidInput(f"unknown pair selection {strategy!r}; use random")
    job = GenerationJob(params={"per_checkpoint": per_checkpoint, "limit": limit, "target_votes": target_votes,
                                "strategy": strategy, "tag": tag, "seed": seed, "sampling": sampling or {}})
    session.add(job)
    session.flush()
    if seed is None:
        job.params = {**job.params, "seed": job.id}
        session.add(job)
    return job


def get_generation_job(*, session: Session, job_id: int) -> GenerationJob:
    job = session.get(GenerationJob, job_id)
    if job is None:
        raise NotFound(f"no generation job {job_id}")
    return job


def claim_generation_job(*, session: Session, job_id: int) -> bool:
    now = utcnow()
    result = session.execute(sa.update(GenerationJob)
                             .where(GenerationJob.id == job_id, GenerationJob.status == JobStatus.queued)
                             .values(status=JobStatus.running, started_at=now, heartbeat_at=now))
    session.commit()
    return result.rowcount == 1


def finish_generation_job(*, session: Session, job_id: int, status: JobStatus, result: dict | None = None,
                          error: str | None = None) -> None:
    job = get_generation_job(session=session, job_id=job_id)
    job.status, job.finished_at = status, utcnow()
    job.result = result or job.result
    job.error = error
    session.add(job)
    session.commit()


def queued_ids(*, session: Session) -> tuple[list[int], list[int]]:
    """Queued generation jobs and training runs, oldest first (the embedded worker's to-do list)."""
    from rlhf.models import TrainingRun

    gens = list(session.exec(select(GenerationJob.id).where(GenerationJob.status == JobStatus.queued)
                             .order_by(GenerationJob.id)))
    runs = list(session.exec(select(TrainingRun.id).where(TrainingRun.status == JobStatus.queued)
                             .order_by(TrainingRun.id)))
    return gens, runs
