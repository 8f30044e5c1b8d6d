"""Machine labels over REST: queue a label job (engineer role) and read how it went.

``POST /api/labels`` validates and stores the job (202); the reward model is loaded by a
worker, never here. A threshold outside (0.5, 1), a checkpoint that is not a reward model,
or a reward model with too few held-out votes to calibrate on is refused with a 422 and
the reason.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from feedback_ui.auth import DB, Engineer, PathId, web_context
from feedback_ui.schemas import UTCDatetime
from rlhf.jobs.submit import submit_label
from rlhf.models import JobStatus
from rlhf.services import machine_labels

router = APIRouter(prefix="/api")


class LabelJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reward_checkpoint_id: int | str = Field(description="the reward model (id or name)")
    min_confidence: float = Field(
        description="label a pair when the calibrated probability of the preferred "
        "answer is at least this; strictly between 0.5 and 1"
    )


class LabelJobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    status: JobStatus
    reward_checkpoint_id: int
    min_confidence: float
    result: dict[str, Any] = Field(
        description="labelled and left for people, and the calibration's reliability: "
        "held-out count, accuracy, ECE, Brier, fitted scale"
    )
    error: str | None
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None


@router.post(
    "/labels",
    response_model=LabelJobPublic,
    status_code=202,
    tags=["models"],
    responses={
        422: {"description": "bad threshold, not a reward model, or too few held-out votes"},
        503: {"description": "the job broker does not answer"},
    },
)
def start_label_job(body: LabelJobCreate, request: Request, user: Engineer, session: DB):
    """Queue machine labelling: the reward model labels the open comparisons it is sure about."""
    return submit_label(
        session=session,
        queue=web_context(request).jobs,
        reward_checkpoint_id=body.reward_checkpoint_id,
        min_confidence=body.min_confidence,
        created_by=user.id,
    )


@router.get("/labels/{job_id}", response_model=LabelJobPublic, tags=["models"])
def get_label_job(job_id: PathId, user: Engineer, session: DB):
    return machine_labels.get_label_job(session=session, job_id=job_id)
