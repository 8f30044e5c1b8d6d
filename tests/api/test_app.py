"""The app around the endpoints: start-up checks, the error mapping, the worker's lifespan, the UI mount."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import threading
import types

import pytest
from fastapi.testclient import TestClient

from feedback_ui.app import create_app
from rlhf.errors import (
    BrokerUnavailable,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RLHFError,
    TrainingFailed,
)
from rlhf.models import User
from rlhf.settings import Settings
from tests import factories
from tests.api.conftest import PASSWORD


def test_example_secret_is_refused_outside_demo_mode(settings):
    for secret in ("", "changeme", "dev-secret-change-me"):
        with pytest.raises(ConfigError, match="RLHF_SECRET_KEY"):
            create_app(settings.model_copy(update={"secret_key": secret}), start_worker=False)
    create_app(settings.model_copy(update={"secret_key": "changeme", "demo": True}), start_worker=False)


@pytest.mark.parametrize(
    "error, status",
    [
        (NotFound("no run 7"), 404),
        (InvalidInput("line 3: bad"), 422),
        (Conflict("closed"), 409),
        (PermissionDenied("no"), 403),
        (BrokerUnavailable("down"), 503),
        (ConfigError("RLHF_X missing"), 500),
        (TrainingFailed("run 3 failed"), 409),
        (RLHFError("other"), 400),
    ],
)
def test_domain_errors_map_to_statuses_in_one_place(settings, error, status):
    app = create_app(settings, start_worker=False)

    def boom():
        raise error

    # Ahead of the UI mounted at "/", which would otherwise answer the path first.
    app.add_api_route("/api/boom", boom, methods=["GET"])
    app.router.routes.insert(0, app.router.routes.pop())
    response = TestClient(app).get("/api/boom")
    assert response.status_code == status
    assert response.json() == {"detail": str(error), "error": type(error).__name__}


def test_database_down_is_503(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        secret_key="a-long-enough-test-secret",
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/nothing",
    )
    app = create_app(settings, start_worker=False)
    ctx = app.state.web  # a token signed as a login would be; checking it needs the database
    token = ctx.tokens.dumps({"uid": 1, "sid": 1, "pw": ctx.fingerprint(User(id=1, name="x", password_hash="h"))})
    with TestClient(app) as client:
        health = client.get("/api/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and health.json()["database"].startswith("unavailable")
        me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 503 and me.json()["error"] == "DatabaseUnavailable"


def _worker_threads():
    return [t for t in threading.enumerate() if t.name == "rlhf-embedded-worker" and t.is_alive()]


def test_embedded_worker_runs_while_the_app_is_up(settings):
    assert not _worker_threads()
    with TestClient(create_app(settings)):
        assert len(_worker_threads()) == 1
    assert not _worker_threads()
    from workers.dispatch import job_queue

    brokered = settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/7"})
    with pytest.raises(ConfigError, match="job queue"):
        create_app(brokered)  # the web app does not import the workers: it is given their queue
    with TestClient(create_app(brokered, jobs=job_queue(brokered))):
        assert not _worker_threads()  # with a broker, Celery workers do the jobs


def test_the_web_process_loads_no_model_libraries(settings):
    code = (
        "import sys; from feedback_ui.app import create_app; from rlhf.settings import get_settings; "
        "create_app(get_settings(), start_worker=False); "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_gradio_ui_is_mounted_behind_the_login_cookie(settings, session, monkeypatch):
    import gradio as gr

    def build_ui(_settings, _jobs, _inference=None):
        with gr.Blocks() as blocks:
            gr.Markdown("rate here")
        return blocks

    fake = types.ModuleType("feedback_ui.ui")
    fake.__spec__ = importlib.machinery.ModuleSpec("feedback_ui.ui", None)
    fake.build_ui = build_ui
    monkeypatch.setitem(sys.modules, "feedback_ui.ui", fake)
    factories.user(session, "rater", password=PASSWORD)
    session.commit()
    with TestClient(create_app(settings, start_worker=False)) as client:
        first = client.get("/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/login?next=/"
        assert client.get("/api/health").json()["status"] == "ok"  # the API still answers beside the UI
        client.post("/login", data={"username": "rater", "password": PASSWORD})
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert client.get("/config").json()["username"] == "rater"
