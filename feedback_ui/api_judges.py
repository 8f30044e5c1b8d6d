"""AI judges over REST: register one (admin), read them with their audit, queue judge jobs (engineer).

Registering is for admins: a judge's URL makes the workers call that address, with the key
from the environment variable it names attached. The judge is called by a worker, never
here. A bad value is a 422 naming its field (``param``); a name already taken is a 409.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from feedback_ui.auth import DB, Admin, Engineer, PathId, web_context
from feedback_ui.schemas_judges import (
    JudgeAuditSummary,
    JudgeCreate,
    JudgeDetail,
    JudgeJobCreate,
    JudgeJobPublic,
    JudgeJobQueued,
    JudgeListed,
    JudgePublic,
)
from rlhf.errors import InvalidInput
from rlhf.jobs.submit import submit_judge
from rlhf.models import stored_id
from rlhf.services import judges
from rlhf.services.judge_audit import audit
from rlhf.services.soft_labels import rater_reliability

router = APIRouter(prefix="/api")
RECENT_JOBS = 10

JudgeRef = Annotated[str, Path(max_length=64, description="the judge's id or name")]


@router.post(
    "/judges",
    response_model=JudgePublic,
    status_code=201,
    tags=["judges"],
    responses={
        404: {"description": "no such checkpoint"},
        409: {"description": "a judge of that name exists"},
        422: {"description": "a bad value; param names the field"},
    },
)
def register_judge(body: JudgeCreate, request: Request, user: Admin, session: DB):
    """Register an AI judge: an OpenAI-compatible ``url`` and ``model``, or a serving ``checkpoint_id``."""
    if body.api_key is not None:
        raise InvalidInput(
            "a judge's API key is never stored: set it in an environment variable where the jobs run, "
            "and name that variable in api_key_env",
            param="api_key",
        )
    return judges.register_judge(
        session=session,
        **body.model_dump(),
        created_by=user.id,
        settings=web_context(request).settings,
    )


@router.get("/judges", response_model=list[JudgeListed], tags=["judges"])
def list_judges(request: Request, user: Engineer, session: DB):
    """Every judge, with the headline of its audit against people."""
    min_overlap = web_context(request).settings.judge_min_overlap
    found = judges.list_judges(session=session)
    reliability = rater_reliability(session=session) if found else {}  # measured once for all of them
    return [
        JudgeListed(
            **JudgePublic.model_validate(j).model_dump(),
            audit=JudgeAuditSummary.model_validate(
                audit(session=session, judge=j, min_overlap=min_overlap, reliability=reliability)
            ),
        )
        for j in found
    ]


@router.get(
    "/judges/{judge}", response_model=JudgeDetail, tags=["judges"], responses={404: {"description": "no such judge"}}
)
def get_judge(judge: JudgeRef, request: Request, user: Engineer, session: DB):
    """One judge (by id or name), its full audit and its recent jobs."""
    found = judges.get_judge(session=session, judge=judge)
    return JudgeDetail(
        **JudgePublic.model_validate(found).model_dump(),
        audit=audit(session=session, judge=found, min_overlap=web_context(request).settings.judge_min_overlap),
        jobs=[
            JudgeJobPublic.model_validate(j)
            for j in judges.judge_jobs(session=session, judge_id=stored_id(found), limit=RECENT_JOBS)
        ],
    )


@router.post(
    "/judges/{judge}/jobs",
    response_model=JudgeJobQueued,
    status_code=202,
    tags=["judges"],
    responses={
        404: {"description": "no such judge"},
        422: {"description": "a bad source or limit; param names the field"},
        503: {"description": "the job broker does not answer"},
    },
)
def start_judge_job(judge: JudgeRef, body: JudgeJobCreate, request: Request, user: Engineer, session: DB):
    """Queue a judge job: the judge votes on the comparisons (of ``source``) it has not judged yet."""
    job = submit_judge(
        session=session,
        queue=web_context(request).jobs,
        judge=judge,
        source=body.source,
        limit=body.limit,
        created_by=user.id,
    )
    return JudgeJobQueued(job_id=stored_id(job), status=job.status)


@router.get(
    "/judge-jobs/{job_id}",
    response_model=JudgeJobPublic,
    tags=["judges"],
    responses={404: {"description": "no such job"}},
)
def get_judge_job(job_id: PathId, user: Engineer, session: DB):
    return judges.get_judge_job(session=session, job_id=job_id)
