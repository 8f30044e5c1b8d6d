"""Merge jobs whose worker died end failed, by the reaper every worker job shares, and leave no checkpoint behind."""

from __future__ import annotations

import time

from sqlmodel import func, select

from rlhf.jobs.merging import execute_merge_job, output_dir
from rlhf.jobs.reaping import reap_stale
from rlhf.models import Checkpoint, JobStatus, MergeJob
from rlhf.services import job_rows
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.merges import create_merge_job, get_merge_job
from tests.adapters import make_adapter


def _lora(session, tiny_model_dir, tmp_path) -> Checkpoint:
    base = register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    return register_checkpoint(
        session=session,
        path=str(make_adapter(tiny_model_dir, tmp_path / "lora")),
        name="lora",
        base_checkpoint_id=base.id,
    )


def test_a_silent_merge_job_is_failed_and_its_half_written_folder_removed(session, settings, tiny_model_dir, tmp_path):
    lora = _lora(session, tiny_model_dir, tmp_path)
    silent, queued = (create_merge_job(session=session, checkpoint_id=lora.id, name=n) for n in ("a", "b"))
    session.commit()
    assert job_rows.claim_job(session=session, table=MergeJob, job_id=silent.id)
    half = settings.checkpoints_dir / f".tmp-merged-job{silent.id}-0123abcd"  # a merge child killed with its worker
    half.mkdir(parents=True)
    other = output_dir(settings, queued.id)
    other.mkdir()
    time.sleep(1.2)

    reaped = reap_stale(settings.model_copy(update={"heartbeat_timeout_s": 1}))
    assert reaped["merge jobs"] == [silent.id]
    session.expire_all()
    job = get_merge_job(session=session, job_id=silent.id)
    assert job.status is JobStatus.failed and job.error == "its worker stopped reporting (no heartbeat for 1 s)"
    assert get_merge_job(session=session, job_id=queued.id).status is JobStatus.queued
    assert not half.exists() and other.exists()  # only the dead job's folder goes


def test_a_merge_job_reaped_while_it_merges_registers_nothing(session, settings, tiny_model_dir, tmp_path, monkeypatch):
    """The worker was thought dead (a database outage longer than the timeout) but finished merging."""
    lora = _lora(session, tiny_model_dir, tmp_path)
    job = create_merge_job(session=session, checkpoint_id=lora.id, name="full")
    session.commit()
    from rlhf.modeling import adapters

    real = adapters.merge_in_child

    def merge_then_be_reaped(ref, dest):
        out = real(ref, dest)
        assert reap_stale(settings.model_copy(update={"heartbeat_timeout_s": 0}))["merge jobs"] == [job.id]
        return out

    monkeypatch.setattr(adapters, "merge_in_child", merge_then_be_reaped)
    assert execute_merge_job(job.id, settings) is JobStatus.failed
    session.expire_all()
    job = get_merge_job(session=session, job_id=job.id)
    assert job.status is JobStatus.failed and "stopped reporting" in job.error and job.output_checkpoint_id is None
    assert session.exec(select(func.count()).select_from(Checkpoint).where(Checkpoint.name == "full")).one() == 0
    assert not output_dir(settings, job.id).exists()
