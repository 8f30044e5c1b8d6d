"""The broker side of :class:`rlhf.jobs.submit.JobQueue`: Celery tasks on Redis."""

from __future__ import annotations

from rlhf.errors import BrokerUnavailable
from rlhf.jobs.embedded import InProcessQueue
from rlhf.jobs.submit import JobKind, JobQueue
from rlhf.settings import Settings, get_settings

TASKS = {
    JobKind.train: "rlhf.train",
    JobKind.generate: "rlhf.generate",
    JobKind.label: "rlhf.label",
    JobKind.merge: "rlhf.merge",
    JobKind.judge: "rlhf.judge",
}


class CeleryQueue:
    """Sends a job's id as a Celery task; the broker's health is a Redis ping."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()

    def status(self) -> str:
        import redis

        try:
            redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=1, socket_timeout=1).ping()
            return "ok"
        except Exception as exc:  # any failure means the broker cannot take jobs now
            return f"unavailable: {exc}"

    def send(self, kind: JobKind, job_id: int) -> None:
        from kombu.exceptions import OperationalError

        from workers.celery_app import app  # heavy: loads Celery, which the embedded (brokerless) CLI never needs

        try:
            app.send_task(
                TASKS[kind],
                args=[job_id],
                queue=kind.queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
        except (OperationalError, ConnectionError, OSError) as exc:
            raise BrokerUnavailable(f"the job broker does not answer ({exc}); try again when it is back") from exc


def job_queue(settings: Settings | None = None) -> JobQueue:
    """The queue the settings ask for: Celery with a broker URL, else the embedded worker."""
    settings = settings or get_settings()
    return InProcessQueue() if settings.embedded else CeleryQueue(settings)
