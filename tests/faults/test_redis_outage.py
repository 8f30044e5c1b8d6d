"""The broker dies while raters vote and a run waits in its queue, then comes back.

Rating needs only the database: every vote sent during the outage is stored. Starting a
run is refused with a 503 that names the broker, and nothing is half-started. When Redis
is back (append-only, as deployed, so the queued run survived), the worker reconnects
by itself and the queued run goes on to succeed.

``tests/deploy/test_health_redis_restart.py`` covers the web app alone against the
machine's Redis; this one adds a real worker and a queued run, on a Redis of its own.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from feedback_ui.app import create_app
from rlhf import db
from rlhf.models import JobStatus, Role, TrainingRun, Vote
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.simulate import simulate
from rlhf.settings import get_settings, reset_settings_cache
from tests import factories
from tests.conftest import _truncate_all
from tests.faults.conftest import wait_until
from tests.integration.conftest import Env, start_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RATERS = 6
PAIRS = 60


@pytest.fixture
def stack(postgres_db, private_redis, tmp_path, tiny_model_dir, monkeypatch):
    """A worker and the web app on a private Redis; raters, an engineer and votes to train on."""
    _truncate_all(postgres_db)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = Env(data_dir, postgres_db, private_redis.url)
    for key in ("RLHF_DATA_DIR", "RLHF_DATABASE_URL", "RLHF_BROKER_URL", "RLHF_SECRET_KEY"):
        monkeypatch.setenv(key, env.vars[key])
    reset_settings_cache()
    import workers.celery_app as celery_app

    monkeypatch.setattr(celery_app, "app", celery_app.make_app())
    with db.session_scope(db.get_engine(postgres_db)) as s:
        register_checkpoint(session=s, path=str(tiny_model_dir), name="tiny", serve=True)
        factories.comparisons(
            s, [("Yes, please sit.", "Sit."), ("Wait.", "Please wait.")] * 4, checkpoint_path="org/train"
        )
        simulate(session=s, rule="contains:please")
        factories.comparisons(s, [(f"left {i}", f"right {i}") for i in range(PAIRS)], checkpoint_path="org/rate")
        users = [factories.user(s, f"rater{i}") for i in range(RATERS)] + [
            factories.user(s, "engineer", role=Role.engineer)
        ]
    from workers.dispatch import job_queue

    app = create_app(get_settings(), jobs=job_queue(), start_worker=False)
    ctx = app.state.web
    tokens = [{"Authorization": f"Bearer {ctx.issue(ctx.tokens, u)}"} for u in users]
    worker = start_worker(env, tmp_path / "worker.log", queues="train")
    try:
        with TestClient(app) as client:
            yield client, tokens[:-1], tokens[-1], private_redis
    finally:
        stop_worker(worker)
        print(f"--- worker ---\n{(tmp_path / 'worker.log').read_text()[-3000:]}")
        reset_settings_cache()


def _status(run_id: int) -> JobStatus:
    with db.session_scope(db.get_engine(get_settings().database_url)) as s:
        return s.get(TrainingRun, run_id).status


def _count(model) -> int:
    with db.session_scope(db.get_engine(get_settings().database_url)) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_redis_outage_keeps_votes_refuses_runs_and_the_queued_run_goes_on(stack):
    client, raters, engineer, redis_server = stack
    assert client.get("/api/health").json()["broker"] == "ok"
    busy = client.post(
        "/api/runs", headers=engineer, json={"algorithm": "dpo", "params": {"steps": 5000, "eval_samples": 0}}
    )
    assert busy.status_code == 202, busy.text
    busy_id = busy.json()["id"]
    wait_until(lambda: _status(busy_id) is JobStatus.running, 60, "the worker never started the first run")
    queued = client.post(
        "/api/runs", headers=engineer, json={"algorithm": "dpo", "params": {"steps": 2, "eval_samples": 0}}
    )
    assert queued.status_code == 202, queued.text
    queued_id = queued.json()["id"]
    votes_before, runs_before = _count(Vote), _count(TrainingRun)

    redis_server.stop()
    down_at = time.monotonic()
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["broker"].startswith("unavailable")

    sent, acknowledged, lock = [], [], threading.Lock()
    start = threading.Barrier(len(raters))

    def rate(headers: dict) -> None:
        start.wait()
        while True:
            handout = client.get("/api/comparisons/next", headers=headers)
            if handout.status_code == 204:
                return
            assert handout.status_code == 200, handout.text
            vote = client.post(
                "/api/votes", headers=headers, json={"comparison_id": handout.json()["comparison_id"], "choice": "a"}
            )
            with lock:
                sent.append(handout.json()["comparison_id"])
                if vote.status_code == 201:
                    acknowledged.append(vote.json()["id"])

    with ThreadPoolExecutor(len(raters)) as pool:
        list(pool.map(rate, raters))
    refused = client.post("/api/runs", headers=engineer, json={"algorithm": "dpo", "params": {"steps": 2}})
    assert refused.status_code == 503 and "broker" in refused.json()["detail"], refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert _count(TrainingRun) == runs_before, "a refused run must not leave a row behind"
    stored = _count(Vote) - votes_before
    print(f"Redis down: {len(sent)} votes sent, {len(acknowledged)} acknowledged (201), {stored} stored")
    assert len(sent) == PAIRS and len(acknowledged) == PAIRS and stored == PAIRS

    # Free the worker while the broker is still down: cancelling needs only the database.
    assert client.post(f"/api/runs/{busy_id}/cancel", headers=engineer).status_code == 200
    wait_until(lambda: _status(busy_id) is JobStatus.cancelled, 60, "the first run did not stop")
    assert _status(queued_id) is JobStatus.queued
    time.sleep(2)  # the worker's consumer notices the lost connection and starts retrying

    redis_server.start()
    print(f"Redis was down {time.monotonic() - down_at:.1f} s")
    back_at = time.monotonic()
    wait_until(lambda: client.get("/api/health").json()["status"] == "ok", 10, "health did not recover")
    took = wait_until(
        lambda: _status(queued_id) is not JobStatus.queued,
        60,
        "the worker did not take the queued run after Redis came back",
    )
    print(f"worker took the queued run {took:.1f} s after Redis was back")
    wait_until(lambda: _status(queued_id).finished, 120, "the queued run did not finish")
    assert _status(queued_id) is JobStatus.succeeded
    print(f"queued run succeeded {time.monotonic() - back_at:.1f} s after Redis was back")
    again = client.post("/api/runs", headers=engineer, json={"algorithm": "dpo", "params": {"steps": 2}})
    assert again.status_code == 202, again.text
    client.post(f"/api/runs/{again.json()['id']}/cancel", headers=engineer)  # nothing more to train here
