"""Merge jobs: an adapter checkpoint merged into full weights, by a worker and never in a web request.

A LoRA checkpoint is a small adapter over its base. Whatever needs its weights in one folder
gets a merged copy, and making one loads the model, so it is a worker job
(:mod:`rlhf.jobs.merging`) with the lifecycle every worker job shares
(:mod:`rlhf.services.job_rows`). A merge job makes one of two things (:class:`MergeTarget`):

- ``serving``: the copy an OpenAI-compatible engine serves (``transformers serve`` loads full
  weights only), cached under :func:`~rlhf.services.checkpoints.merged_dir`. It is queued when
  a LoRA checkpoint starts serving; until it is done the arena leaves the checkpoint out and
  says why (:func:`serving_copy_state`). A checkpoint ``RLHF_INFERENCE_MODELS`` maps needs none.
- ``checkpoint``: a new full checkpoint named ``name``, its parent the adapter checkpoint (an
  engineer's explicit merge).

A prompt-tuning adapter has no full-weights form and is never queued.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.input_rules import check_text
from rlhf.models import Checkpoint, CheckpointKind, CheckpointStatus, JobStatus, MergeJob, MergeTarget, stored_id
from rlhf.services import job_rows
from rlhf.services.checkpoints import engine_ready, get_checkpoint, unmergeable_reason
from rlhf.settings import Settings

_UNFINISHED = (JobStatus.queued, JobStatus.running)
MAX_NAME_CHARS = 256  # the checkpoint name column's width


def check_mergeable(checkpoint: Checkpoint) -> None:
    """Refuse a full model (nothing to merge) and a prompt-tuning adapter (it cannot be merged), saying why."""
    if not checkpoint.adapter:
        raise InvalidInput(
            f"checkpoint {checkpoint.id} ({checkpoint.name}) is a full model already, not an adapter: "
            "there is nothing to merge"
        )
    reason = unmergeable_reason(checkpoint)
    if reason:
        raise Conflict(f"checkpoint {checkpoint.id} ({checkpoint.name}) cannot be merged: {reason}")


def _name_taken(session: Session, name: str) -> bool:
    if session.exec(select(Checkpoint.id).where(Checkpoint.name == name)).first() is not None:
        return True
    return (
        session.exec(select(MergeJob.id).where(MergeJob.name == name, col(MergeJob.status).in_(_UNFINISHED))).first()
        is not None
    )


def create_merge_job(
    *, session: Session, checkpoint_id: int | str, name: str | None = None, created_by: int | None = None
) -> MergeJob:
    """Validate and store a merge job that makes a new full checkpoint (default name: ``NAME-merged``)."""
    ckpt = get_checkpoint(session=session, checkpoint_id=checkpoint_id)
    check_mergeable(ckpt)
    name = check_text(name, "the merge", "name") if name else f"{ckpt.name}-merged"
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(
            f"the merged checkpoint's name is {len(name)} characters long; the limit is "
            f"{MAX_NAME_CHARS}: give a shorter name"
        )
    if _name_taken(session, name):
        raise Conflict(f"a checkpoint named {name!r} already exists (or a merge job is making one)")
    job = MergeJob(checkpoint_id=stored_id(ckpt), target=MergeTarget.checkpoint, name=name, created_by=created_by)
    session.add(job)
    session.flush()
    return job


def needs_serving_copy(settings: Settings, checkpoint: Checkpoint) -> bool:
    """A serving LoRA policy an engine cannot load as it is, whose merged copy is not there yet."""
    return (
        checkpoint.kind is CheckpointKind.policy
        and checkpoint.status is CheckpointStatus.serving
        and unmergeable_reason(checkpoint) is None
        and not engine_ready(settings, checkpoint)
    )


def serving_copy_job(
    *, session: Session, settings: Settings, checkpoint: Checkpoint, created_by: int | None = None
) -> MergeJob | None:
    """The merge job making this serving checkpoint's engine copy: the one queued or running, else a new one;
    None when it needs no copy (a full model, a mapped one, a prompt-tuning one, or the copy exists)."""
    if not needs_serving_copy(settings, checkpoint):
        return None
    checkpoint_id = stored_id(checkpoint)
    pending = latest_serving_jobs(session=session, checkpoint_ids=[checkpoint_id]).get(checkpoint_id)
    if pending is not None and pending.status in _UNFINISHED:
        return pending
    job = MergeJob(checkpoint_id=checkpoint_id, target=MergeTarget.serving, created_by=created_by)
    session.add(job)
    session.flush()
    return job


def latest_serving_jobs(*, session: Session, checkpoint_ids: list[int]) -> dict[int, MergeJob]:
    """The newest serving merge job of each of these checkpoints that has one."""
    if not checkpoint_ids:
        return {}
    rows = session.exec(
        select(MergeJob)
        .where(col(MergeJob.checkpoint_id).in_(checkpoint_ids), MergeJob.target == MergeTarget.serving)
        .order_by(col(MergeJob.id))
    )
    return {job.checkpoint_id: job for job in rows}


def serving_copy_state(*, session: Session, settings: Settings, checkpoints: list[Checkpoint]) -> dict[int, str]:
    """Why each of these LoRA checkpoints cannot answer through an engine yet, by id; absent when it can."""
    waiting = [c for c in checkpoints if unmergeable_reason(c) is None and not engine_ready(settings, c)]
    jobs = latest_serving_jobs(session=session, checkpoint_ids=[stored_id(c) for c in waiting])
    state: dict[int, str] = {}
    for ckpt in waiting:
        ckpt_id = stored_id(ckpt)
        job = jobs.get(ckpt_id)
        if job is not None and job.status in _UNFINISHED:
            state[ckpt_id] = (
                f"it is being merged for the inference engine (merge job {job.id}, "
                f"{job.status.value}); it battles once that is done"
            )
        elif job is not None and job.status is JobStatus.failed:
            first = (job.error or "no reason stored").strip().splitlines()[0]
            state[ckpt_id] = (
                f"its merge for the inference engine failed (merge job {job.id}: {first}); serve it again to retry"
            )
        else:
            state[ckpt_id] = "it has no merged copy for the inference engine; serve it again to make one"
    return state


def get_merge_job(*, session: Session, job_id: int) -> MergeJob:
    return job_rows.get_job(session=session, table=MergeJob, job_id=job_id)


def list_merge_jobs(*, session: Session, checkpoint_id: int | None = None, limit: int = 50) -> list[MergeJob]:
    """Merge jobs, newest first; of one checkpoint when ``checkpoint_id`` is given."""
    query = select(MergeJob).order_by(col(MergeJob.id).desc()).limit(limit)
    if checkpoint_id is not None:
        query = query.where(MergeJob.checkpoint_id == checkpoint_id)
    return list(session.exec(query))


def queued_merge_ids(*, session: Session) -> list[int]:
    return job_rows.queued_job_ids(session=session, table=MergeJob)
