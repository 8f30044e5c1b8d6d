"""Queueing a job after its row is committed: Celery when a broker is set, else the embedded worker."""

from __future__ import annotations

from rlhf.errors import BrokerUnavailable
from rlhf.settings import get_settings


def _send(task_name: str, job_id: int, queue: str) -> None:
    settings = get_settings()
    if settings.embedded:
        return  # the embedded worker polls the database for queued rows
    from kombu.exceptions import OperationalError

    from workers.celery_app import app

    try:
        app.send_task(task_name, args=[job_id], queue=queue, retry=True,
                      retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})
    except (OperationalError, ConnectionError, OSError) as exc:
        raise BrokerUnavailable(f"the job broker does not answer ({exc}); try again when it is back") from exc


def _submit(session, create, fail, task_name: str, queue: str):
    """Create the row, commit it, then queue its id.

    A broker known to be down refuses the request before anything is written; one that
    fails between the commit and the send leaves the row failed with the reason, never
    queued with nobody to run it.
    """
    status = broker_status()
    if status.startswith("unavailable"):
        raise BrokerUnavailable(f"the job broker is {status}; nothing was started, try again when it is back")
    row = create()
    session.commit()
    try:
        _send(task_name, row.id, queue)
    except BrokerUnavailable as exc:
        fail(row.id, str(exc))
        raise
    return row


def submit_run(*, session, **run_fields):
    from rlhf.models import JobStatus
    from rlhf.services.runs import create_run, finish_run

    return _submit(session, lambda: create_run(session=session, **run_fields),
                   lambda run_id, error: finish_run(session=session, run_id=run_id, status=JobStatus.failed,
                                                    error=error),
                   "rlhf.train", "train")


def submit_generation(*, session, **job_fields):
    from rlhf.models import JobStatus
    from rlhf.services.generation_jobs import create_generation_job, finish_generation_job

    return _submit(session, lambda: create_generation_job(session=session, **job_fields),
                   lambda job_id, error: finish_generation_job(session=session, job_id=job_id,
                                                               status=JobStatus.failed, error=error),
                   "rlhf.generate", "generate")


def broker_status() -> str:
    """'embedded', 'ok' or 'unavailable: …' for the health check."""
    settings = get_settings()
    if settings.embedded:
        return "embedded"
    import redis

    try:
        redis.Redis.from_url(settings.broker_url, socket_connect_timeout=1, socket_timeout=1).ping()
        return "ok"
    except Exception as exc:  # any failure means the broker cannot take jobs now
        return f"unavailable: {exc}"
