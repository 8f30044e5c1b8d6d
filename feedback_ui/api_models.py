"""The REST API's model endpoints: checkpoints served and retired, generation jobs, training runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from feedback_ui.auth import DB, Engineer, PathId, web_context
from feedback_ui.schemas import (
    CheckpointPublic,
    GenerationJobCreate,
    GenerationJobPublic,
    RunCreate,
    RunDetail,
    RunPublic,
)
from rlhf.jobs.submit import serve, submit_generation, submit_run
from rlhf.models import TrainingRun
from rlhf.services import checkpoints, generation_jobs, runs

router = APIRouter(prefix="/api")


@router.get("/checkpoints", response_model=list[CheckpointPublic], tags=["models"])
def list_checkpoints(user: Engineer, session: DB):
    return checkpoints.list_checkpoints(session=session)


@router.post("/checkpoints/{checkpoint_id}/serve", response_model=CheckpointPublic, tags=["models"])
def serve_checkpoint(checkpoint_id: PathId, request: Request, user: Engineer, session: DB):
    """Serve a policy: its responses enter the next generation job's comparisons. A LoRA one also gets a
    merge job for the copy an inference engine serves (``GET /api/merge-jobs``); it battles in the arena
    once that is done."""
    ctx = web_context(request)
    ckpt, _ = serve(
        session=session, queue=ctx.jobs, settings=ctx.settings, checkpoint_id=checkpoint_id, created_by=user.id
    )
    return ckpt


@router.post(
    "/checkpoints/{checkpoint_id}/retire",
    response_model=CheckpointPublic,
    tags=["models"],
    responses={409: {"description": "it is the last serving policy (retire it with force=true)"}},
)
def retire_checkpoint(
    checkpoint_id: PathId,
    user: Engineer,
    session: DB,
    force: Annotated[bool, Query(description="retire even the last serving policy")] = False,
):
    """Stop serving a checkpoint; it stays in the registry and on the leaderboard. The last serving
    policy is refused (nothing would be left to generate from) unless ``force=true``."""
    ckpt = checkpoints.retire_checkpoint(session=session, checkpoint_id=checkpoint_id, force=force)
    return ckpt


@router.post(
    "/generate",
    response_model=GenerationJobPublic,
    status_code=202,
    tags=["models"],
    responses={503: {"description": "the job broker does not answer"}},
)
def generate(body: GenerationJobCreate, request: Request, user: Engineer, session: DB):
    """Queue a generation job: sample responses from serving checkpoints and open comparisons.

    ``select=uncertain`` opens first the pairs the reward model is least sure about."""
    votes = body.target_votes or web_context(request).settings.votes_per_comparison
    return submit_generation(
        session=session,
        queue=web_context(request).jobs,
        per_checkpoint=body.per_checkpoint,
        limit=body.limit,
        tag=body.tag,
        target_votes=votes,
        strategy=body.select,
        reward_checkpoint_id=body.reward_checkpoint_id,
        pool=body.pool,
        sampling={"max_new_tokens": body.max_new_tokens, "temperature": body.temperature},
        ask_strength=body.ask_strength,
        rank=body.rank,
    )


@router.get("/generate/{job_id}", response_model=GenerationJobPublic, tags=["models"])
def get_generation_job(job_id: PathId, user: Engineer, session: DB):
    return generation_jobs.get_generation_job(session=session, job_id=job_id)


@router.post(
    "/runs",
    response_model=RunPublic,
    status_code=202,
    tags=["models"],
    responses={503: {"description": "the job broker does not answer"}},
)
def start_run(body: RunCreate, request: Request, user: Engineer, session: DB) -> RunPublic:
    """Start a training run; 202 with the queued run (its ``id``). The votes it trains on are frozen now."""
    run = submit_run(
        session=session,
        queue=web_context(request).jobs,
        algorithm=body.algorithm,
        base_checkpoint_id=body.base_checkpoint_id,
        reward_checkpoint_id=body.reward_checkpoint_id,
        params=body.params,
        serve_on_success=body.serve,
        ties=body.ties,
        aggregate=body.aggregate,
        exclude_flagged=body.exclude_flagged,
        labels=body.labels,
        created_by=user.id,
    )
    return _run_public(run)


@router.get("/runs", response_model=list[RunPublic], tags=["models"])
def list_runs(user: Engineer, session: DB, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[RunPublic]:
    """Training runs, newest first."""
    return [_run_public(r) for r in runs.list_runs(session=session, limit=limit)]


@router.get("/runs/{run_id}", response_model=RunDetail, tags=["models"])
def get_run(run_id: PathId, user: Engineer, session: DB) -> RunDetail:
    """A run with its log: the curves (loss, reward, KL per step)."""
    run = runs.get_run(session=session, run_id=run_id)
    log = [{"step": e.step, **e.values} for e in runs.run_log(session=session, run_id=run_id)]
    return RunDetail(**_run_public(run).model_dump(), log=log)


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunPublic,
    tags=["models"],
    responses={409: {"description": "the run has already finished"}},
)
def cancel_run(run_id: PathId, user: Engineer, session: DB) -> RunPublic:
    """Cancel a queued run at once, or ask a running one to stop (``cancel_requested``)."""
    return _run_public(runs.cancel_run(session=session, run_id=run_id))


def _run_public(run: TrainingRun) -> RunPublic:
    return RunPublic(**runs.run_summary(run))
