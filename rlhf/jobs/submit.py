"""Queueing a job: the one interface the domain defines for it, and the two submit services.

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
from rlhf.models import GenerationJob, JobStatus, LabelJob, TrainingRun
from rlhf.services.job_rows import fail_job


class JobKind(str, Enum):
    """A kind of job, and the queue that carries it."""

    train = "train"
    generate = "generate"
    label = "label"  # machine labelling: loads a reward model, so it runs beside generation jobs

    @property
    def queue(self) -> str:
        """The worker queue that carries this kind (label jobs share the ``generate`` queue)."""
        return "train" if self is JobKind.train else "generate"


class JobQueue(Protocol):
    def status(self) -> str:
        """``embedded``, ``ok`` or ``unavailable: <reason>`` (the health check shows it)."""

    def send(self, kind: JobKind, job_id: int) -> None:
        """Queue the id of a committed job; raises :class:`BrokerUnavailable` when it cannot."""


Row = TypeVar("Row", TrainingRun, GenerationJob, LabelJob)


def _submit(session: Session, queue: JobQueue, kind: JobKind, create: Callable[[], Row],
            fail: Callable[[int, str], Any]) -> Row:
    status = queue.status()
    if status.startswith("unavailable"):
        raise BrokerUnavailable(f"the job broker is {status}; nothing was started, try again when it is back")
    row = create()
    session.commit()  # a worker may take the id at once: it must find the row
    try:
        queue.send(kind, row.id)
    except BrokerUnavailable as exc:
        fail(row.id, str(exc))
        session.commit()
        raise
    return row


def submit_run(*, session: Session, queue: JobQueue, **run_fields: Any) -> TrainingRun:
    """Commits: stores the run, commits it, then queues its id.

    A broker known to be down refuses the request before anything is written; one that
    fails between the commit and the send leaves the run failed with the reason, never
    queued with nobody to run it. ``run_fields`` are :func:`rlhf.services.runs.create_run`'s.
    """
    from rlhf.services.runs import create_run, finish_run

    return _submit(session, queue, JobKind.train, lambda: create_run(session=session, **run_fields),
                   lambda run_id, error: finish_run(session=session, run_id=run_id, status=JobStatus.failed,
                                                    error=error))


def submit_generation(*, session: Session, queue: JobQueue, **job_fields: Any) -> GenerationJob:
    """Commits: stores the generation job, commits it, then queues its id (as :func:`submit_run`)."""
    from rlhf.services.generation_jobs import create_generation_job

    return _submit(session, queue, JobKind.generate, lambda: create_generation_job(session=session, **job_fields),
                   lambda job_id, error: fail_job(session=session, table=GenerationJob, job_id=job_id, error=error))


def submit_label(*, session: Session, queue: JobQueue, **job_fields: Any) -> LabelJob:
    """Commits: stores the label job, commits it, then queues its id (as :func:`submit_run`).
    ``job_fields`` are :func:`rlhf.services.machine_labels.create_label_job`'s."""
    from rlhf.services.machine_labels import create_label_job

    return _submit(session, queue, JobKind.label, lambda: create_label_job(session=session, **job_fields),
                   lambda job_id, error: fail_job(session=session, table=LabelJob, job_id=job_id, error=error))
