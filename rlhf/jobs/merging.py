"""Executing a merge job: an adapter checkpoint merged into full weights, in a child process of the worker.

The worker claims the job and beats while the child (:func:`rlhf.modeling.adapters.merge_in_child`)
loads base + adapter and saves the merged model under a temporary name, renamed into place
when complete. A ``serving`` job's copy goes to the checkpoint's ``merged_dir`` (an existing
copy is kept: the job is then done at once); a ``checkpoint`` job's folder is named by the
job's id and registered as a new checkpoint in the transaction that ends the job, so a job
the reaper failed meanwhile leaves neither a row nor a folder behind.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from rlhf import db
from rlhf.errors import RLHFError
from rlhf.jobs.heartbeat import run_job
from rlhf.modeling import adapters  # looked up at call time, so a test can stand in for the merging child
from rlhf.models import JobStatus, MergeJob, MergeTarget
from rlhf.services import job_rows
from rlhf.services.checkpoints import get_checkpoint, has_merged_copy, merged_dir, model_ref, register_checkpoint
from rlhf.services.merges import check_mergeable, get_merge_job
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)


def output_dir(settings: Settings, job_id: int) -> Path:
    """Where a ``checkpoint`` merge job writes its new checkpoint (the reaper cleans after a dead one by this)."""
    return settings.checkpoints_dir / f"merged-job{job_id}"


def execute_merge_job(job_id: int, settings: Settings | None = None) -> JobStatus | None:
    """Claim and run one merge job; its final status, or None if it was not ours to run."""
    settings = settings or get_settings()
    return run_job(MergeJob, job_id, settings, lambda engine: _merge(engine, settings, job_id))


def _merge(engine, settings: Settings, job_id: int) -> dict:
    with db.session_scope(engine) as session:
        job = get_merge_job(session=session, job_id=job_id)
        ckpt = get_checkpoint(session=session, checkpoint_id=job.checkpoint_id)
        check_mergeable(ckpt)
        ref = model_ref(session=session, checkpoint=ckpt)
        serving = job.target is MergeTarget.serving
        dest = merged_dir(settings, ckpt) if serving else output_dir(settings, job_id)
        cached = serving and has_merged_copy(settings, ckpt)
    if not cached:
        log.info("merge job %s: merging checkpoint %s into %s", job_id, job.checkpoint_id, dest)
        adapters.merge_in_child(ref, dest)
    if serving:
        result = {"path": str(dest), "made": not cached}
        with db.session_scope(engine) as session:
            job_rows.finish_job(
                session=session, table=MergeJob, job_id=job_id, status=JobStatus.succeeded, result=result
            )
        return result
    try:
        with db.session_scope(engine) as session:
            job = get_merge_job(session=session, job_id=job_id)
            source = get_checkpoint(session=session, checkpoint_id=job.checkpoint_id)
            if job.name is None:  # create_merge_job names every job that makes a checkpoint
                raise RLHFError(f"merge job {job_id} names no checkpoint to make")
            new = register_checkpoint(
                session=session,
                path=str(dest),
                name=job.name,
                kind=source.kind,
                parent_id=source.id,
                run_id=source.run_id,
                metrics={"merged_from": source.id},
            )
            result = {"path": str(dest), "checkpoint_id": new.id}
            # In the registering transaction: a job reaped meanwhile registers nothing.
            job_rows.finish_job(
                session=session,
                table=MergeJob,
                job_id=job_id,
                status=JobStatus.succeeded,
                result=result,
                output_checkpoint_id=new.id,
            )
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)  # its row was rolled back: no folder without one
        raise
    return result
