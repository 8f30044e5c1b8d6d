"""``GET /metrics`` on the real app, on SQLite and PostgreSQL: figures read from the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from feedback_ui import metrics
from feedback_ui.app import create_app
from rlhf.models import JobStatus, TrainingRun
from rlhf.services.generation_jobs import create_generation_job
from rlhf.services.runs import create_run, finish_run
from rlhf.services.votes import record_vote
from tests import factories
from tests.conftest import redis_database


def _scrape(settings) -> dict[tuple[str, frozenset], float]:
    from workers.dispatch import job_queue

    app = create_app(settings, jobs=job_queue(settings), start_worker=False)
    metrics.install(app, settings)
    with TestClient(app) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _get(samples, name, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def loop_state(session):
    """Three comparisons (two voted on), a finished and a queued DPO run, a queued generation job."""
    rater = factories.user(session, name="rater")
    comps = factories.comparisons(session, [(f"left {i}", f"right {i}") for i in range(3)], serve=True)
    record_vote(session=session, rater=rater, comparison_id=comps[0].id, choice="a", as_shown=False)
    record_vote(session=session, rater=rater, comparison_id=comps[1].id, choice="tie", as_shown=False)
    done = create_run(session=session, algorithm="dpo")
    queued = create_run(session=session, algorithm="dpo")
    create_generation_job(session=session)
    session.commit()
    finish_run(session=session, run_id=done.id, status=JobStatus.succeeded)
    run = session.get(TrainingRun, done.id)
    run.started_at = run.finished_at - timedelta(seconds=42)
    session.add(run)
    session.commit()
    return queued


def test_metrics_show_the_database_counts(settings, loop_state):
    samples = _scrape(settings)
    assert _get(samples, "rlhf_database_up") == 1
    assert _get(samples, "rlhf_votes_total", choice="a") == 1
    assert _get(samples, "rlhf_votes_total", choice="tie") == 1
    assert _get(samples, "rlhf_votes_total", choice="b") == 0
    assert _get(samples, "rlhf_open_comparisons") == 1
    assert _get(samples, "rlhf_training_runs", status="succeeded", algorithm="dpo") == 1
    assert _get(samples, "rlhf_training_runs", status="queued", algorithm="dpo") == 1
    assert _get(samples, "rlhf_training_runs", status="failed", algorithm="dpo") == 0
    assert _get(samples, "rlhf_generation_jobs", status="queued") == 1
    # No broker: the depth is the queued rows the embedded worker will take.
    assert _get(samples, "rlhf_queue_depth", queue="train", source="database") == 1
    assert _get(samples, "rlhf_queue_depth", queue="generate", source="database") == 1
    duration = dict(algorithm="dpo", status="succeeded")
    assert _get(samples, "rlhf_training_run_duration_seconds_count", **duration) == 1
    assert _get(samples, "rlhf_training_run_duration_seconds_sum", **duration) == pytest.approx(42, abs=1)
    assert _get(samples, "rlhf_training_run_duration_seconds_bucket", le="30.0", **duration) == 0
    assert _get(samples, "rlhf_training_run_duration_seconds_bucket", le="60.0", **duration) == 1


def test_every_web_process_reports_the_same_figures(settings, session, loop_state):
    """Read at scrape time: a vote recorded anywhere shows in a second app's next scrape."""
    first = _scrape(settings)
    rater = factories.user(session, name="second-rater")
    comparison = factories.comparisons(session, [("x", "y")], checkpoint_path="org/other")[0]
    record_vote(session=session, rater=rater, comparison_id=comparison.id, choice="b", as_shown=False)
    second = _scrape(settings)
    assert _get(second, "rlhf_votes_total", choice="b") == _get(first, "rlhf_votes_total", choice="b") + 1
    assert _get(second, "rlhf_votes_total", choice="a") == _get(first, "rlhf_votes_total", choice="a")


@pytest.mark.integration
def test_queue_depth_comes_from_the_broker(settings, loop_state):
    url, client = redis_database(9)
    client.delete("train", "generate", "generate\x06\x163")
    try:
        client.rpush("train", "m1", "m2")
        client.rpush("generate", "m3")
        client.rpush("generate\x06\x163", "m4")  # kombu's list for priority 3
        samples = _scrape(settings.model_copy(update={"broker_url": url}))
    finally:
        client.delete("train", "generate", "generate\x06\x163")
    assert _get(samples, "rlhf_broker_up") == 1
    assert _get(samples, "rlhf_queue_depth", queue="train", source="broker") == 2
    assert _get(samples, "rlhf_queue_depth", queue="generate", source="broker") == 2


def test_a_broker_that_does_not_answer_is_reported_not_fatal(settings, loop_state):
    samples = _scrape(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    assert _get(samples, "rlhf_broker_up") == 0
    assert _get(samples, "rlhf_votes_total", choice="a") == 1


def test_metrics_route_is_not_taken_by_the_ui(settings):
    app = create_app(settings, start_worker=False)
    metrics.install(app, settings)
    with TestClient(app) as client:
        assert client.get("/metrics").text.startswith("# HELP")
        assert client.get("/api/health").status_code == 200
