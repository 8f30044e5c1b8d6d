"""Fixtures for the arena: the real ``transformers serve`` (started once per session), two
serving copies of the tiny model, an app that reaches the engine, and a slow fake engine."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from feedback_ui.app import create_app
from rlhf.inference import Inference
from rlhf.inference.engine import ManagedEngine
from rlhf.services.checkpoints import register_checkpoint
from tests import factories
from tests.api.conftest import PASSWORD, basic, cheap_hashing  # noqa: F401  (the fixture applies here too)
from tests.fake_engine import FakeEngine


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """A real ``transformers serve`` child process, shared by the tests that only talk to it."""
    eng = ManagedEngine(log_path=tmp_path_factory.mktemp("engine") / "inference.log", model_timeout_s=3600)
    eng.ensure()
    yield eng
    eng.stop()


@pytest.fixture(scope="session")
def tiny_copies(tiny_model_dir, tmp_path_factory) -> list[str]:
    """Two checkpoint directories of the tiny model (the engine knows a checkpoint by its path)."""
    root = tmp_path_factory.mktemp("ckpts")
    out = []
    for name in ("alpha", "beta"):
        shutil.copytree(tiny_model_dir, root / name)
        out.append(str(root / name))
    return out


@pytest.fixture
def arena_world(session, tiny_copies):
    users = {
        role: factories.user(session, name=role, role=role, password=PASSWORD)
        for role in ("rater", "engineer", "admin")
    }
    factories.user(session, name="other", role="rater", password=PASSWORD)
    ckpts = [
        register_checkpoint(session=session, path=p, name=n, serve=True) for p, n in zip(tiny_copies, ("alpha", "beta"))
    ]
    session.commit()
    return {"users": users, "checkpoints": ckpts}


@pytest.fixture
def arena_client(settings, engine, arena_world):
    app = create_app(settings, start_worker=False, inference=Inference(url=engine.url, timeout_s=60))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def fake_engine():
    fake = FakeEngine()
    stop = fake.serve()
    yield fake
    stop()


def sse_events(response) -> list[tuple[str, object]]:
    """(event, JSON data) of a server-sent event stream, as a browser's EventSource splits it."""
    events, name, data = [], None, []
    for line in response.iter_lines():
        if not line:
            if name or data:
                events.append((name or "message", json.loads("\n".join(data))))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


RATER = basic("rater")
HELLO = [{"role": "user", "content": "Name a colour."}]
