"""Failing the work of dead workers: every worker job (runs; generation, label and merge jobs)
whose heartbeat went silent.

Called by every worker at start-up and periodically after (see ``workers.reaper``), and by
the embedded worker on each pass, so work whose worker was killed ends ``failed`` within
about ``RLHF_HEARTBEAT_TIMEOUT_S`` even if no new worker starts. A dead run's half-written
model folder is deleted; a dead job has nothing to clean (it stores its output in one
transaction at its end). One reaper serves every table that opts in to the worker job
lifecycle (:data:`rlhf.services.job_rows.WORKER_JOBS`), and only those. A dead merge job's new
checkpoint folder, whole or half-written, is deleted too: its row was never registered.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

from rlhf import db
from rlhf.services.job_rows import WORKER_JOBS, reap_stale_jobs
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)


def reap_stale(settings: Settings | None = None, engine=None) -> dict[str, list[int]]:
    """What was failed, by kind: ``{"runs": [...], "generation jobs": [...], "label jobs": [...],
    "merge jobs": [...]}``."""
    settings = settings or get_settings()
    engine = engine or db.get_engine(settings.database_url)
    timeout = timedelta(seconds=settings.heartbeat_timeout_s)
    with db.session_scope(engine) as session:
        reaped = {
            f"{what}s": reap_stale_jobs(session=session, table=table, timeout=timeout)
            for table, what in WORKER_JOBS.items()
        }
    for run_id in reaped["runs"]:
        for leftover in settings.checkpoints_dir.glob(f".tmp-run{run_id}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    for job_id in reaped["merge jobs"]:
        for leftover in [
            settings.checkpoints_dir / f"merged-job{job_id}",
            *settings.checkpoints_dir.glob(f".tmp-merged-job{job_id}-*"),
        ]:
            shutil.rmtree(leftover, ignore_errors=True)
    for kind, ids in reaped.items():
        if ids:
            log.warning(
                "marked %s %s failed: their worker stopped reporting for %s s", kind, ids, settings.heartbeat_timeout_s
            )
    return reaped
