"""The Celery application: Redis broker, queues ``train`` and ``generate``.

Reliability choices, on purpose:
- ``acks_late`` + prefetch 1: a job is acknowledged only when it has finished, and a
  worker holds at most one job it has not started.
- Redis ``visibility_timeout`` longer than any run: otherwise Redis hands a long run to
  another worker while the first is still training it.
- ``task_reject_on_worker_lost``: a job whose worker died is queued again. The run's
  claim in the database makes that safe: a run already started is not started twice
  (the stale one is failed by the reaper), a run never started is.
- No result backend: outcomes live on the run row, never in Celery.
- Every worker fails runs whose heartbeat went silent (:mod:`workers.reaper`): a run
  whose worker was killed ends ``failed`` instead of staying ``running``.
"""

from __future__ import annotations

from celery import Celery, signals
from kombu import Queue

from rlhf.settings import get_settings
from workers import reaper


def make_app() -> Celery:
    settings = get_settings()
    app = Celery("rlhf", broker=settings.broker_url or "redis://127.0.0.1:6379/0", include=["workers.tasks"])
    app.conf.update(
        task_queues=(Queue("train"), Queue("generate")),
        task_default_queue="generate",
        task_routes={
            "rlhf.train": {"queue": "train"},
            "rlhf.generate": {"queue": "generate"},
            "rlhf.label": {"queue": "generate"},
            "rlhf.merge": {"queue": "generate"},
            "rlhf.judge": {"queue": "generate"},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


app = make_app()


def _connect_reaper() -> None:
    signals.worker_ready.connect(reaper.start_on_worker_ready, weak=False)
    signals.worker_shutdown.connect(reaper.stop_on_worker_shutdown, weak=False)


_connect_reaper()
