"""Fixtures for the REST API: an app per test on the parametrised database, users, a small world.

Password hashing uses a cheap argon2 setting here (production keeps the slow default);
tests authenticate thousands of times and must not spend 0.4 s on each.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import object_session

from feedback_ui.app import create_app
from rlhf.inference import Inference
from rlhf.models import User
from rlhf.services.generation_jobs import create_generation_job
from rlhf.services.runs import create_run
from rlhf.services.votes import record_vote
from tests import factories
from tests.fake_engine import FakeEngine

PASSWORD = "correct-horse-battery"
ROLES = ("rater", "engineer", "admin")


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    from rlhf.services import users

    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(users, "_hasher", hasher)
    monkeypatch.setattr(users, "_DUMMY_HASH", hasher.hash("not-a-real-password"))


@pytest.fixture(scope="session")
def test_engine_url():
    """Arena answers in the API tests come from a small OpenAI-compatible test server; the real
    `transformers serve` is tested in tests/arena."""
    fake = FakeEngine()
    stop = fake.serve()
    yield fake.url
    stop()


@pytest.fixture
def app(settings, test_engine_url):
    return create_app(settings, start_worker=False, inference=Inference(url=test_engine_url))


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def basic(name: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def bearer(app, user: User) -> dict[str, str]:
    """A token for ``user``, as ``POST /api/token`` would give: its login row names the user, so the
    user is committed first (a login can only be opened for a stored user)."""
    session = object_session(user)
    if session is not None:
        session.commit()
    ctx = app.state.web
    return {"Authorization": f"Bearer {ctx.issue(ctx.tokens, user)}"}


@dataclass
class World:
    """Enough state that every endpoint has something to act on."""

    users: dict[str, User]
    seed_rater: User
    checkpoint_id: int
    comparison_ids: list[int]
    run_id: int
    job_id: int


@pytest.fixture
def world(session) -> World:
    users = {role: factories.user(session, name=role, role=role, password=PASSWORD) for role in ROLES}
    seed = factories.user(session, name="seed", password=PASSWORD)
    comps = factories.comparisons(session, [(f"left {i}", f"right {i}") for i in range(6)], serve=True)
    for comp in comps[:3]:  # votes to train on; three comparisons stay open for the raters
        record_vote(session=session, rater=seed, comparison_id=comp.id, choice="a", as_shown=False)
    run = create_run(session=session, algorithm="dpo")
    job = create_generation_job(session=session)
    session.commit()
    return World(
        users=users,
        seed_rater=seed,
        checkpoint_id=_checkpoint_of(session, comps[0]),
        comparison_ids=[c.id for c in comps],
        run_id=run.id,
        job_id=job.id,
    )


def _checkpoint_of(session, comparison) -> int:
    from rlhf.models import Response

    return session.get(Response, comparison.response_a_id).checkpoint_id
