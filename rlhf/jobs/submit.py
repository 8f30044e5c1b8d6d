"""Queueing a job: the one interface the domain defines for it, and the services that submit jobs.

    JobQueue                                  where the id of a committed job goes
    ├── rlhf.jobs.embedded.InProcessQueue     no broker: the embedded worker polls the database
    └── workers.dispatch.CeleryQueue          a broker: Celery tasks on the ``train``/``generate`` queues

The edges (the CLI, the web app) hold one ``JobQueue`` and pass it in, so nothing under
``rlhf/`` imports Celery; ``workers`` implements the broker side.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, Protocol, TypeVar

from sqlmodel import Session

from rlhf.errors import BrokerUnavailable
from rlhf.models import Checkpoint, GenerationJob, JobStatus, JudgeJob, LabelJob, MergeJob, TrainingRun, stored_id
from rlhf.services.checkpoints import serve_checkpoint
from rlhf.services.generation_jobs import create_generation_job
from rlhf.services.job_rows import fail_job
from rlhf.services.judges import create_judge_job
from rlhf.services.machine_labels import create_label_job
from rlhf.services.merges import create_merge_job, serving_copy_job
from rlhf.services.runs import create_run, finish_run
from rlhf.settings import Settings


class JobKind(str, Enum):
    """A kind of job, and the queue that carries it."""

    train = "train"
    generate = "generate"
    label = "label"  # machine labelling: loads a reward model, so it runs beside generation jobs
    merge = "merge"  # an adapter merged into full weights: loads a model, needs no training GPU
    judge = "judge"  # an AI judge's verdicts: calls an endpoint, beside generation jobs

    @property
    def queue(self) -> str:
        """The worker queue that carries this kind (label, merge and judge jobs share the ``generate`` queue)."""
        return "train" if self is JobKind.train else "generate"


class JobQueue(Protocol):
    def status(self) -> str:
        """``embedded``, ``ok`` or ``unavailable: <reason>`` (the health check shows it)."""

    def send(self, kind: JobKind, job_id: int) -> None:
        """Queue the id of a committed job; raises :class:`BrokerUnavailable` when it cannot."""


Row = TypeVar("Row", TrainingRun, GenerationJob, LabelJob, MergeJob, JudgeJob)


def _submit(
    session: Session, queue: JobQueue, kind: JobKind, create: Callable[[], Row], fail: Callable[[int, str], Any]
) -> Row:
    status = queue.status()
    if status.startswith("unavailable"):
        raise BrokerUnavailable(f"the job broker is {status}; nothing was started, try again when it is back")
    row = create()
    session.commit()  # a worker may take the id at once: it must find the row
    try:
        queue.send(kind, stored_id(row))
    except BrokerUnavailable as exc:
        fail(stored_id(row), str(exc))
        session.commit()
        raise
    return row


def submit_run(*, session: Session, queue: JobQueue, **run_fields: Any) -> TrainingRun:
    """Commits: stores the run, commits it, then queues its id.

    A broker known to be down refuses the request before anything is written; one that
    fails between the commit and the send leaves the run failed with the reason, never
    queued with nobody to run it. ``run_fields`` are :func:`rlhf.services.runs.create_run`'s.
    """
    return _submit(
        session,
        queue,
        JobKind.train,
        lambda: create_run(session=session, **run_fields),
        lambda run_id, error: finish_run(session=session, run_id=run_id, status=JobStatus.failed, error=error),
    )


def submit_generation(*, session: Session, queue: JobQueue, **job_fields: Any) -> GenerationJob:
    """Commits: stores the generation job, commits it, then queues its id (as :func:`submit_run`)."""
    return _submit(
        session,
        queue,
        JobKind.generate,
        lambda: create_generation_job(session=session, **job_fields),
        lambda job_id, error: fail_job(session=session, table=GenerationJob, job_id=job_id, error=error),
    )


def submit_label(*, session: Session, queue: JobQueue, **job_fields: Any) -> LabelJob:
    """Commits: stores the label job, commits it, then queues its id (as :func:`submit_run`).
    ``job_fields`` are :func:`rlhf.services.machine_labels.create_label_job`'s."""
    return _submit(
        session,
        queue,
        JobKind.label,
        lambda: create_label_job(session=session, **job_fields),
        lambda job_id, error: fail_job(session=session, table=LabelJob, job_id=job_id, error=error),
    )


def submit_judge(*, session: Session, queue: JobQueue, **job_fields: Any) -> JudgeJob:
    """Commits: stores the judge job, commits it, then queues its id (as :func:`submit_run`).
    ``job_fields`` are :func:`rlhf.services.judges.create_judge_job`'s."""
    return _submit(
        session,
        queue,
        JobKind.judge,
        lambda: create_judge_job(session=session, **job_fields),
        lambda job_id, error: fail_job(session=session, table=JudgeJob, job_id=job_id, error=error),
    )


def submit_merge(*, session: Session, queue: JobQueue, **job_fields: Any) -> MergeJob:
    """Commits: stores a merge job making a new full checkpoint, commits it, then queues its id (as
    :func:`submit_run`). ``job_fields`` are :func:`rlhf.services.merges.create_merge_job`'s."""
    return _submit(
        session,
        queue,
        JobKind.merge,
        lambda: create_merge_job(session=session, **job_fields),
        lambda job_id, error: fail_job(session=session, table=MergeJob, job_id=job_id, error=error),
    )


def queue_serving_copy(
    *, session: Session, queue: JobQueue, settings: Settings, checkpoint: Checkpoint, created_by: int | None = None
) -> MergeJob | None:
    """Commits: the work so far, and the merge job making a serving LoRA checkpoint's engine copy when it
    needs one (:func:`rlhf.services.merges.serving_copy_job`); then queues its id.

    The checkpoint serves whatever the broker says: one that does not answer fails the job with
    the reason, the arena says the copy is missing, and serving the checkpoint again retries.
    """
    job = serving_copy_job(session=session, settings=settings, checkpoint=checkpoint, created_by=created_by)
    session.commit()  # a worker may take the id at once: it must find the row
    if job is None or job.status is not JobStatus.queued:
        return job
    try:
        queue.send(JobKind.merge, stored_id(job))
    except BrokerUnavailable as exc:
        fail_job(session=session, table=MergeJob, job_id=stored_id(job), error=str(exc))
        session.commit()
    return job


def serve(
    *, session: Session, queue: JobQueue, settings: Settings, checkpoint_id: int | str, created_by: int | None = None
) -> tuple[Checkpoint, MergeJob | None]:
    """Commits: serves a checkpoint, and queues the merged copy an inference engine needs of a LoRA one.

    The web app, the CLI and the console serve through this, so no battle ever waits on a merge."""
    ckpt = serve_checkpoint(session=session, checkpoint_id=checkpoint_id)
    session.flush()
    job = queue_serving_copy(session=session, queue=queue, settings=settings, checkpoint=ckpt, created_by=created_by)
    return ckpt, job
