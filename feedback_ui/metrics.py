"""``GET /metrics``: the loop's state in Prometheus' text format.

Every figure is read from the database (and the broker's queue lengths from Redis) when
Prometheus scrapes, not counted in this process: several web processes behind a load
balancer then answer the same numbers, and a restart loses nothing. The queries are a
handful of ``GROUP BY`` counts, cheap at any scrape interval.

The endpoint needs no login, like ``/api/health``: it shows counts, never content. Keep it
on the internal network (the reverse proxy need not forward it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlmodel import Session, func, select
from starlette.routing import Mount

from rlhf import db
from rlhf.models import (
    Algorithm,
    Choice,
    Comparison,
    ComparisonStatus,
    GenerationJob,
    JobStatus,
    TrainingRun,
    Vote,
    as_utc,
)
from rlhf.services.vote_kinds import human_vote
from rlhf.settings import Settings

log = logging.getLogger(__name__)

# Which table holds the jobs a queue carries: the fallback depth without a broker.
QUEUES = {"train": TrainingRun, "generate": GenerationJob}
# From a tiny-model smoke run (seconds) to a multi-GPU PPO run (a day).
DURATION_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, float("inf"))


class LoopCollector(Collector):
    """Reads the counts at scrape time. A database that does not answer gives ``rlhf_database_up 0``
    and no other database figures, rather than a failed scrape."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("rlhf_database_up", "1 when the database answered this scrape")
        try:
            with Session(db.get_engine(self.settings.database_url)) as session:
                metrics = list(self._from_database(session))
            up.add_metric([], 1)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: database unavailable: %s", getattr(exc, "orig", exc))
            metrics = []
            up.add_metric([], 0)
        yield up
        yield from metrics
        yield from self._queue_depth()

    def _from_database(self, session: Session) -> Iterable[Metric]:
        votes = CounterMetricFamily(
            "rlhf_votes", "Votes recorded, by choice (machine labels not counted)", labels=["choice"]
        )
        counts = _grouped(session, Vote.choice, human_vote())
        for choice in Choice:
            votes.add_metric([choice.value], counts.get(choice.value, 0))
        yield votes

        open_ = GaugeMetricFamily("rlhf_open_comparisons", "Comparisons still waiting for votes")
        open_.add_metric(
            [],
            session.exec(
                select(func.count()).select_from(Comparison).where(Comparison.status == ComparisonStatus.open)
            ).one(),
        )
        yield open_

        runs = GaugeMetricFamily(
            "rlhf_training_runs", "Training runs, by status and algorithm", labels=["status", "algorithm"]
        )
        counts = {
            (_value(s), _value(a)): n
            for s, a, n in session.exec(
                select(TrainingRun.status, TrainingRun.algorithm, func.count()).group_by(
                    TrainingRun.status, TrainingRun.algorithm
                )
            ).all()
        }
        for status in JobStatus:  # zeros too, so an alert on failed runs has a series before the first failure
            for algorithm in Algorithm:
                runs.add_metric([status.value, algorithm.value], counts.get((status.value, algorithm.value), 0))
        yield runs

        yield _durations(session)

        jobs = GaugeMetricFamily("rlhf_generation_jobs", "Generation jobs, by status", labels=["status"])
        counts = _grouped(session, GenerationJob.status)
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs

    def _queue_depth(self) -> Iterable[Metric]:
        """Messages waiting in each Celery queue; without a broker, the queued rows the embedded worker polls."""
        depth = GaugeMetricFamily(
            "rlhf_queue_depth", "Jobs waiting in each queue (source: broker or database)", labels=["queue", "source"]
        )
        if self.settings.broker_url:
            broker_up = GaugeMetricFamily("rlhf_broker_up", "1 when the broker answered this scrape")
            try:
                for queue, n in _broker_depths(self.settings.broker_url).items():
                    depth.add_metric([queue, "broker"], n)
                broker_up.add_metric([], 1)
            except Exception as exc:  # any broker failure: report it down, keep the rest of the scrape
                log.warning("metrics: broker unavailable: %s", exc)
                broker_up.add_metric([], 0)
            yield broker_up
        else:
            try:
                with Session(db.get_engine(self.settings.database_url)) as session:
                    for queue, model in QUEUES.items():
                        n = session.exec(
                            select(func.count()).select_from(model).where(model.status == JobStatus.queued)
                        ).one()
                        depth.add_metric([queue, "database"], n)
            except sa.exc.SQLAlchemyError:
                pass  # already reported as rlhf_database_up 0
        yield depth


def _value(v) -> str:
    return getattr(v, "value", v)


def _grouped(session: Session, column, *where) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).where(*where).group_by(column)).all()
    return {_value(k): n for k, n in rows}


def _durations(session: Session) -> Metric:
    """Wall time of finished runs (started → finished), per algorithm and outcome.

    Computed in Python from the two timestamps: the same code on SQLite and PostgreSQL,
    and a deployment has hundreds of runs, not millions.
    """
    hist = HistogramMetricFamily(
        "rlhf_training_run_duration_seconds", "Wall time of finished training runs", labels=["algorithm", "status"]
    )
    rows = session.exec(
        select(TrainingRun.algorithm, TrainingRun.status, TrainingRun.started_at, TrainingRun.finished_at).where(
            TrainingRun.started_at.is_not(None), TrainingRun.finished_at.is_not(None)
        )
    ).all()
    series: dict[tuple[str, str], list[float]] = {}
    for algorithm, status, started, finished in rows:
        seconds = max(0.0, (as_utc(finished) - as_utc(started)).total_seconds())
        series.setdefault((_value(algorithm), _value(status)), []).append(seconds)
    for labels, values in sorted(series.items()):
        buckets = [(floatToGoString(b), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
        hist.add_metric(list(labels), buckets=buckets, sum_value=sum(values))
    return hist


def _broker_depths(broker_url: str) -> dict[str, int]:
    """LLEN of each queue's Redis list, including kombu's priority lists (``queue\\x06\\x16N``)."""
    import redis
    from kombu.transport.redis import PRIORITY_STEPS

    sep = "\x06\x16"
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        pipe = client.pipeline(transaction=False)
        keys = {q: [q] + [f"{q}{sep}{p}" for p in PRIORITY_STEPS if p] for q in QUEUES}
        for names in keys.values():
            for name in names:
                pipe.llen(name)
        lengths = iter(pipe.execute())
        return {q: sum(next(lengths) for _ in names) for q, names in keys.items()}
    finally:
        client.close()


def install(app: FastAPI, settings: Settings) -> None:
    """Add ``GET /metrics`` to ``app``, with a registry of its own (apps in one process never clash)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoopCollector(settings))

    def metrics() -> Response:  # sync: FastAPI runs it in a thread, so the queries never block the event loop
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    # The UI is mounted at "/" and would swallow the path; keep the route ahead of any mount.
    routes = app.router.routes
    route = routes.pop()
    first_mount = next((i for i, r in enumerate(routes) if isinstance(r, Mount)), len(routes))
    routes.insert(first_mount, route)
