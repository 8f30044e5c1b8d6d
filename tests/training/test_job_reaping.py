"""Generation and label jobs whose worker died end failed, and a job failed that way stores nothing.

The real thing (a Celery worker SIGKILLed mid-job, another worker's reaper failing it) is
``tests/faults/test_job_worker_killed.py``; these pin the row rules and the in-process path.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

import pytest
from sqlmodel import func, select

from rlhf.errors import Conflict
from rlhf.jobs.generation import execute_generation_job
from rlhf.jobs.reaping import reap_stale
from rlhf.modeling import sampling
from rlhf.models import Comparison, GenerationJob, JobStatus, LabelJob, Response
from rlhf.services import job_rows
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.generation_jobs import create_generation_job, get_generation_job
from rlhf.services.prompts import PromptRecord, import_records

sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)


def _label_job(session, tiny_model_dir) -> LabelJob:
    reward = register_checkpoint(session=session, path=str(tiny_model_dir), name="reward", kind="reward")
    job = LabelJob(reward_checkpoint_id=reward.id, min_confidence=0.9)
    session.add(job)
    session.flush()
    return job


def _generation_job(session, tiny_model_dir) -> GenerationJob:
    register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    import_records(
        session=session, records=[PromptRecord(messages=[{"role": "user", "content": f"Hi {i}"}]) for i in range(2)]
    )
    return create_generation_job(session=session, per_checkpoint=2)


@pytest.mark.parametrize("make", [_generation_job, _label_job], ids=["generation", "label"])
def test_a_silent_job_is_failed_with_the_reason_a_beating_one_and_a_queued_one_are_not(session, tiny_model_dir, make):
    table = type(silent := make(session, tiny_model_dir))
    beating, queued = table(params=silent.params), table(params=silent.params)
    if table is LabelJob:
        beating.reward_checkpoint_id = queued.reward_checkpoint_id = silent.reward_checkpoint_id
        beating.min_confidence = queued.min_confidence = 0.9
    session.add_all([beating, queued])
    session.commit()
    for job in (silent, beating):
        assert job_rows.claim_job(session=session, table=table, job_id=job.id)
    assert not job_rows.claim_job(session=session, table=table, job_id=silent.id)  # one worker per job
    time.sleep(1.2)
    assert job_rows.beat(session=session, table=table, job_id=beating.id)

    assert job_rows.reap_stale_jobs(session=session, table=table, timeout=timedelta(seconds=1)) == [silent.id]
    session.commit()
    statuses = {j.id: (j.status, j.error) for j in session.exec(select(table))}
    assert statuses[silent.id] == (JobStatus.failed, "its worker stopped reporting (no heartbeat for 1 s)")
    assert statuses[beating.id][0] is JobStatus.running and statuses[queued.id][0] is JobStatus.queued

    # The dead job's worker, if it comes back, can neither beat nor finish it, and its reason stays.
    assert not job_rows.beat(session=session, table=table, job_id=silent.id)
    with pytest.raises(Conflict, match="already ended"):
        job_rows.finish_job(
            session=session, table=table, job_id=silent.id, status=JobStatus.succeeded, result={"done": 1}
        )
    assert not job_rows.fail_job(session=session, table=table, job_id=silent.id, error="later reason")
    session.commit()
    session.expire_all()
    assert session.get(table, silent.id).error.startswith("its worker stopped reporting")
    assert session.get(table, silent.id).result == {}


@sqlite_only
def test_a_job_reaped_while_it_samples_stores_nothing(session, settings, tiny_model_dir, monkeypatch):
    """The worker was thought dead (a database outage longer than the timeout) but finished sampling."""
    job = _generation_job(session, tiny_model_dir)
    session.commit()
    real = sampling.sample_checkpoint

    def sample_then_be_reaped(*args, **kwargs):
        out = real(*args, **kwargs)
        reaped = reap_stale(settings.model_copy(update={"heartbeat_timeout_s": 0}))
        assert reaped["generation jobs"] == [job.id]
        return out

    monkeypatch.setattr("rlhf.jobs.generation.sample_checkpoint", sample_then_be_reaped)
    assert execute_generation_job(job.id, settings) is JobStatus.failed
    session.expire_all()
    job = get_generation_job(session=session, job_id=job.id)
    assert job.status is JobStatus.failed and "stopped reporting" in job.error
    assert session.exec(select(func.count()).select_from(Response)).one() == 0
    assert session.exec(select(func.count()).select_from(Comparison)).one() == 0


@sqlite_only
def test_a_job_that_works_longer_than_the_timeout_keeps_beating_and_succeeds(
    session, settings, tiny_model_dir, monkeypatch
):
    job = _generation_job(session, tiny_model_dir)
    session.commit()
    short = settings.model_copy(update={"heartbeat_timeout_s": 1})
    real = sampling.sample_checkpoint
    reaped_meanwhile = []

    def slow_sample(*args, **kwargs):
        for _ in range(10):  # 3 s of work, three times the timeout, with a reaper looking every 0.3 s
            time.sleep(0.3)
            reaped_meanwhile.extend(reap_stale(short)["generation jobs"])
        return real(*args, **kwargs)

    monkeypatch.setattr("rlhf.jobs.generation.sample_checkpoint", slow_sample)
    assert execute_generation_job(job.id, short) is JobStatus.succeeded
    assert reaped_meanwhile == []
    session.expire_all()
    assert get_generation_job(session=session, job_id=job.id).result["comparisons"] >= 1


@sqlite_only
def test_a_run_reaped_as_its_checkpoint_is_registered_leaves_no_folder_and_no_row(session, settings, tiny_model_dir):
    """The reaper fails the run between the worker's last look and its finish: the failure stands."""
    from rlhf.jobs.training import _register, final_dir
    from rlhf.models import Algorithm, Checkpoint, TrainingRun

    run = TrainingRun(algorithm=Algorithm.dpo, status=JobStatus.running)
    session.add(run)
    session.commit()
    output = settings.checkpoints_dir / ".tmp-trained"
    shutil.copytree(tiny_model_dir, output)  # what the trainer left to be renamed into place
    job_rows.fail_job(session=session, table=TrainingRun, job_id=run.id, error="worker lost")
    session.commit()
    status = _register(session, settings, run, output, {"loss": 0.1})
    session.commit()
    assert status is JobStatus.failed
    assert not final_dir(settings, run).exists()
    assert session.exec(select(func.count()).select_from(Checkpoint)).one() == 0
