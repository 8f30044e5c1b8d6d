"""Generation jobs: rows that say which prompts to sample, from what, and how it went."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from rlhf.errors import InvalidInput
from rlhf.models import Checkpoint, CheckpointKind, CheckpointStatus, GenerationJob, TrainingRun
from rlhf.services import job_rows
from rlhf.services.checkpoints import get_checkpoint, list_checkpoints, serving_checkpoints
from rlhf.services.generation_params import GenerationParams, Sampling
from rlhf.settings import get_settings

POOL_FACTOR = 4  # "uncertain" samples this many times the prompts it opens, to have low-margin pairs to pick


def create_generation_job(
    *,
    session: Session,
    per_checkpoint: int | None = None,
    limit: int | None = None,
    target_votes: int | None = None,
    strategy: str = "random",
    reward_checkpoint_id: int | str | None = None,
    pool: int | None = None,
    tag: str | None = None,
    seed: int | None = None,
    sampling: dict[str, Any] | Sampling | None = None,
    ask_strength: bool = False,
    rank: int | None = None,
) -> GenerationJob:
    """Validate and store a generation job's parameters (the job itself runs in a worker).

    Every limit is checked here (see :mod:`rlhf.services.generation_params`), so a bad value is
    refused before anything is queued. ``strategy`` is how pairs are picked: ``random``
    opens the sampled pairs as they come; ``uncertain`` samples a larger pool of prompts
    (``pool``, default ``POOL_FACTOR`` × ``limit``) and opens first the pairs the reward
    model is least sure about. Its reward model is the one named, else the newest one not
    retired. ``target_votes`` left out follows the deployment's ``votes_per_comparison``.
    ``rank`` K opens one ranking of K answers per prompt instead of pairs, the answers drawn
    from the serving checkpoints in turn, newest first.
    """
    if target_votes is None:
        target_votes = get_settings().votes_per_comparison
    params = GenerationParams.parse(
        {
            "per_checkpoint": per_checkpoint,
            "limit": limit,
            "target_votes": target_votes,
            "strategy": strategy,
            "tag": tag,
            "seed": seed,
            "pool": pool,
            "sampling": sampling if sampling is not None else {},
            "ask_strength": ask_strength,
            "rank": rank,
        }
    )
    if params.rank is not None:
        if params.strategy != "random":
            raise InvalidInput(
                "a ranking opens every answer of a prompt together: pair selection does not apply to it",
                param="select",
                allowed=["random"],
            )
        if per_checkpoint is not None or ask_strength:
            raise InvalidInput(
                "a ranking draws its answers across the serving checkpoints and asks no strength: "
                + ("per_checkpoint" if per_checkpoint is not None else "ask_strength")
                + " does not apply to it",
                param="per_checkpoint" if per_checkpoint is not None else "ask_strength",
            )
    if not serving_checkpoints(session=session):
        raise InvalidInput("no serving checkpoint to sample from", remedy="serve_checkpoint")
    if params.strategy == "random":
        if reward_checkpoint_id is not None or pool is not None:
            raise InvalidInput(
                "a reward model and a candidate pool only apply to uncertain pair selection",
                param="select",
                allowed=["uncertain"],
            )
    else:
        if pool is not None and limit is not None and pool < limit:
            raise InvalidInput(
                "the candidate pool must be at least the prompt limit (it is where the opened prompts are picked from)",
                param="pool",
            )
        reward = uncertainty_reward_model(session=session, checkpoint_id=reward_checkpoint_id)
        params = params.model_copy(
            update={
                "reward_checkpoint_id": reward.id,
                "pool": pool if pool is not None else (POOL_FACTOR * limit if limit else None),
            }
        )
    job = GenerationJob(params=params.model_dump(mode="json"))
    session.add(job)
    session.flush()
    if seed is None:
        job.params = {**job.params, "seed": job.id}
        session.add(job)
    return job


def job_params(job: GenerationJob) -> GenerationParams:
    """The stored parameters, typed (jobs stored before every field existed get the defaults)."""
    return GenerationParams.model_validate(job.params)


def uncertainty_reward_model(*, session: Session, checkpoint_id: int | str | None) -> Checkpoint:
    """The reward model that ranks pairs: the one named, else the newest registered one not retired."""
    if checkpoint_id is not None:
        ckpt = get_checkpoint(session=session, checkpoint_id=checkpoint_id)
        if ckpt.kind is not CheckpointKind.reward:
            raise InvalidInput(f"checkpoint {ckpt.id} ({ckpt.name}) is a policy, not a reward model")
        return ckpt
    candidates = [
        c
        for c in list_checkpoints(session=session, kind=CheckpointKind.reward)
        if c.status is not CheckpointStatus.retired
    ]
    if not candidates:
        raise InvalidInput(
            "uncertain pair selection needs a reward model, and none is registered",
            param="select",
            allowed=["random"],
            remedy="train_reward_model",
        )
    return candidates[-1]


def get_generation_job(*, session: Session, job_id: int) -> GenerationJob:
    return job_rows.get_job(session=session, table=GenerationJob, job_id=job_id)


def queued_ids(*, session: Session) -> tuple[list[int], list[int]]:
    """Queued generation jobs and training runs, oldest first (the embedded worker's to-do list)."""
    return (
        job_rows.queued_job_ids(session=session, table=GenerationJob),
        job_rows.queued_job_ids(session=session, table=TrainingRun),
    )
