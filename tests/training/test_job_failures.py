"""A generation job that cannot do its work fails with a reason a user can act on; the worker goes on."""

from __future__ import annotations

import pytest

from rlhf.errors import InvalidInput, failure_reason
from rlhf.jobs.generation import execute_generation_job
from rlhf.models import JobStatus
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.generation_jobs import create_generation_job, get_generation_job

sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)


def test_a_user_error_is_recorded_as_its_message_and_anything_else_with_its_traceback():
    try:
        raise InvalidInput("no prompts tagged 'x'")
    except InvalidInput as exc:
        assert failure_reason(exc) == "no prompts tagged 'x'"
    try:
        {}["missing"]
    except KeyError as exc:
        reason = failure_reason(exc)
    assert reason.startswith("KeyError: 'missing'\n") and "Traceback" in reason and __file__ in reason


@sqlite_only
def test_a_generation_job_with_no_prompts_fails_saying_so(session, settings, tiny_model_dir):
    register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    job = create_generation_job(session=session)
    session.commit()
    assert execute_generation_job(job.id, settings) is JobStatus.failed
    session.expire_all()
    job = get_generation_job(session=session, job_id=job.id)
    assert job.status is JobStatus.failed and job.error == "nothing to do: no prompts"
    assert execute_generation_job(job.id, settings) is None  # a finished job is never run again
