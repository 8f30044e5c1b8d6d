"""The embedded worker: with no broker configured, queued jobs run in this process.

It polls the database for queued merge jobs, generation jobs, label jobs, judge jobs and training runs and executes them
one at a time with the same functions a Celery worker calls, so a laptop needs
nothing but the package. Claims are atomic, so it can share a database with others.
"""

from __future__ import annotations

from rlhf import db
from rlhf.jobs.generation import execute_generation_job
from rlhf.jobs.judging import execute_judge_job
from rlhf.jobs.labelling import execute_label_job
from rlhf.jobs.merging import execute_merge_job
from rlhf.jobs.polling import PollingThread
from rlhf.jobs.reaping import reap_stale
from rlhf.jobs.submit import JobKind
from rlhf.jobs.training import execute_run
from rlhf.services.generation_jobs import queued_ids
from rlhf.services.judges import queued_judge_ids
from rlhf.services.machine_labels import queued_label_ids
from rlhf.services.merges import queued_merge_ids
from rlhf.settings import Settings, get_settings


class InProcessQueue:
    """The :class:`~rlhf.jobs.submit.JobQueue` without a broker: the committed row is the queue."""

    def status(self) -> str:
        return "embedded"

    def send(self, kind: JobKind, job_id: int) -> None:
        """Nothing to send: the embedded worker finds queued rows in the database."""


def work_once(settings: Settings | None = None) -> int:
    """Run every job queued now; returns how many ran."""
    settings = settings or get_settings()
    engine = db.get_engine(settings.database_url)
    reap_stale(settings, engine)
    with db.session_scope(engine) as session:
        gens, runs = queued_ids(session=session)
        label_jobs = queued_label_ids(session=session)
        merges = queued_merge_ids(session=session)
        judge_jobs = queued_judge_ids(session=session)
    done = 0
    for job_id in merges:  # first: a generation job or a battle may be waiting for a merged copy
        done += execute_merge_job(job_id, settings) is not None
    for job_id in gens:
        done += execute_generation_job(job_id, settings) is not None
    for job_id in label_jobs:
        done += execute_label_job(job_id, settings) is not None
    for job_id in judge_jobs:
        done += execute_judge_job(job_id, settings) is not None
    for run_id in runs:
        done += execute_run(run_id, settings) is not None
    return done


class EmbeddedWorker(PollingThread):
    """A daemon thread running :func:`work_once` every ``interval`` seconds."""

    def __init__(self, settings: Settings | None = None, interval: float = 2.0):
        self.settings = settings or get_settings()
        super().__init__("rlhf-embedded-worker", interval, lambda: work_once(self.settings))
