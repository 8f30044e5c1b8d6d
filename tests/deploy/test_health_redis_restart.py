"""The broker goes away and comes back: the web app degrades instead of failing.

Rating needs only the database, so votes go on while Redis is down; queueing a run is
refused with a 503 that names the broker; health says so, and recovers by itself.

This stops the machine's real Redis for a few seconds (other test runs share it), so
everything that can be prepared is prepared before, and Redis is restarted in a
``finally`` whatever happens.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import redis
from fastapi.testclient import TestClient

from feedback_ui.app import create_app
from rlhf.models import Role
from rlhf.services.votes import record_vote
from rlhf.settings import get_settings, reset_settings_cache
from tests import factories
from tests.conftest import REDIS_URL, _truncate_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# How this machine's Redis is started (scripts/services); restarted exactly so.
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def _ping(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def app_with_broker(postgres_db, tmp_path, monkeypatch):
    url = f"{REDIS_URL.rstrip('/')}/10"
    if not _ping(url):
        pytest.fail(f"Redis is required for this test and does not answer at {REDIS_URL}")
    _truncate_all(postgres_db)
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RLHF_DATABASE_URL", postgres_db)
    monkeypatch.setenv("RLHF_BROKER_URL", url)
    monkeypatch.setenv("RLHF_SECRET_KEY", "test-secret-key-not-for-production")
    reset_settings_cache()
    import workers.celery_app as celery_app

    monkeypatch.setattr(celery_app, "app", celery_app.make_app())  # bound to this test's broker
    from workers.dispatch import job_queue

    yield create_app(get_settings(), jobs=job_queue(), start_worker=False), url
    reset_settings_cache()


def test_broker_outage_degrades_health_refuses_runs_and_keeps_voting(app_with_broker, session_pg):
    app, url = app_with_broker
    s = session_pg
    seed = factories.user(s, name="seed")
    rater = factories.user(s, name="rater")
    engineer = factories.user(s, name="engineer", role=Role.engineer)
    comps = factories.comparisons(s, [(f"left {i}", f"right {i}") for i in range(3)], serve=True)
    record_vote(session=s, rater=seed, comparison_id=comps[0].id, choice="a", as_shown=False)
    s.commit()
    ctx = app.state.web
    as_rater = {"Authorization": f"Bearer {ctx.issue(ctx.tokens, rater)}"}
    as_engineer = {"Authorization": f"Bearer {ctx.issue(ctx.tokens, engineer)}"}

    with TestClient(app) as client:
        assert client.get("/api/health").json() == {"status": "ok", "database": "ok", "broker": "ok"}
        try:
            subprocess.run(["redis-cli", "-u", REDIS_URL, "shutdown", "nosave"], capture_output=True, timeout=10)
            _wait(lambda: not _ping(url), 10, "Redis still answers after shutdown")

            health = client.get("/api/health")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            assert health.json()["broker"].startswith("unavailable")

            pair = client.get("/api/comparisons/next", headers=as_rater)
            assert pair.status_code == 200
            vote = client.post(
                "/api/votes", headers=as_rater, json={"comparison_id": pair.json()["comparison_id"], "choice": "a"}
            )
            assert vote.status_code == 201

            run = client.post("/api/runs", headers=as_engineer, json={"algorithm": "dpo"})
            assert run.status_code == 503
            assert "broker" in run.json()["detail"]
        finally:
            if not _ping(url):
                subprocess.run(REDIS_START, capture_output=True, timeout=30)
            _wait(lambda: _ping(url), 30, "Redis did not come back")
        assert client.get("/api/health").json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.fixture
def session_pg(app_with_broker):
    from rlhf import db

    with db.session_scope(db.get_engine(get_settings().database_url)) as s:
        yield s
