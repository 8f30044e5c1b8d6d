"""Merge jobs over REST: merge an adapter checkpoint into full weights (engineer role), and read how it went.

``POST /api/checkpoints/{id}/merge`` validates and stores the job (202); the model is loaded
by a worker, never here. Serving a LoRA checkpoint queues the merged copy an inference
engine serves the same way; ``GET /api/merge-jobs`` lists both kinds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from feedback_ui.auth import DB, Engineer, PathId, web_context
from feedback_ui.schemas import UTCDatetime
from rlhf.jobs.submit import submit_merge
from rlhf.models import JobStatus, MergeTarget
from rlhf.services import merges

router = APIRouter(prefix="/api")


class MergeJobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    status: JobStatus
    checkpoint_id: int = Field(description="the adapter checkpoint being merged")
    target: MergeTarget = Field(
        description="checkpoint: a new full checkpoint named `name`; serving: the copy an "
        "inference engine serves (queued when a LoRA checkpoint starts serving)"
    )
    name: str | None
    output_checkpoint_id: int | None = Field(description="the new checkpoint, once the job has succeeded")
    result: dict[str, Any]
    error: str | None
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None


@router.post(
    "/checkpoints/{checkpoint_id}/merge",
    response_model=MergeJobPublic,
    status_code=202,
    tags=["models"],
    responses={
        422: {"description": "not an adapter checkpoint: there is nothing to merge"},
        404: {"description": "no such checkpoint"},
        409: {"description": "a prompt-tuning adapter (it cannot be merged), or the name is taken"},
        503: {"description": "the job broker does not answer"},
    },
)
def merge_checkpoint(
    checkpoint_id: PathId,
    request: Request,
    user: Engineer,
    session: DB,
    name: Annotated[
        str | None, Query(max_length=200, description="name of the new checkpoint (default: NAME-merged)")
    ] = None,
):
    """Queue a merge of a LoRA adapter checkpoint into its base: a worker makes a new full checkpoint whose
    parent is the adapter one. Follow it at ``GET /api/merge-jobs/{id}``; ``output_checkpoint_id`` is the new one."""
    return submit_merge(
        session=session, queue=web_context(request).jobs, checkpoint_id=checkpoint_id, name=name, created_by=user.id
    )


@router.get("/merge-jobs", response_model=list[MergeJobPublic], tags=["models"])
def list_merge_jobs(
    user: Engineer,
    session: DB,
    checkpoint_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="of this checkpoint only")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
):
    """Merge jobs, newest first: explicit merges and the copies serving LoRA checkpoints need."""
    return merges.list_merge_jobs(session=session, checkpoint_id=checkpoint_id, limit=limit)


@router.get(
    "/merge-jobs/{job_id}",
    response_model=MergeJobPublic,
    tags=["models"],
    responses={404: {"description": "no such merge job"}},
)
def get_merge_job(job_id: PathId, user: Engineer, session: DB):
    return merges.get_merge_job(session=session, job_id=job_id)
