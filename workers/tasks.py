"""Tasks take an id, call ``rlhf``, and leave the outcome on the row (never in Celery)."""

from __future__ import annotations

import logging

from rlhf.jobs.generation import execute_generation_job
from rlhf.jobs.judging import execute_judge_job
from rlhf.jobs.labelling import execute_label_job
from rlhf.jobs.merging import execute_merge_job
from rlhf.jobs.training import execute_run
from workers.celery_app import app

log = logging.getLogger(__name__)


@app.task(name="rlhf.train")
def train(run_id: int) -> str | None:
    status = execute_run(run_id)
    log.info("run %s: %s", run_id, status.value if status else "skipped (not queued)")
    return status.value if status else None


@app.task(name="rlhf.generate")
def generate(job_id: int) -> str | None:
    status = execute_generation_job(job_id)
    log.info("generation job %s: %s", job_id, status.value if status else "skipped (not queued)")
    return status.value if status else None


@app.task(name="rlhf.label")
def label(job_id: int) -> str | None:
    status = execute_label_job(job_id)
    log.info("label job %s: %s", job_id, status.value if status else "skipped (not queued)")
    return status.value if status else None


@app.task(name="rlhf.judge")
def judge(job_id: int) -> str | None:
    status = execute_judge_job(job_id)
    log.info("judge job %s: %s", job_id, status.value if status else "skipped (not queued)")
    return status.value if status else None


@app.task(name="rlhf.merge")
def merge(job_id: int) -> str | None:
    status = execute_merge_job(job_id)
    log.info("merge job %s: %s", job_id, status.value if status else "skipped (not queued)")
    return status.value if status else None
