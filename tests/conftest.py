"""Shared fixtures: real databases (SQLite file and PostgreSQL), settings, the tiny model.

PostgreSQL and Redis are real servers. ``RLHF_TEST_POSTGRES_URL`` / ``RLHF_TEST_REDIS_URL``
point at them (defaults: the local ones); ``scripts/test`` starts them when nothing
answers, and a test that needs one fails (never skips) when it is missing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from rlhf import db
from rlhf.settings import reset_settings_cache

POSTGRES_ADMIN_URL = os.environ.get("RLHF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RLHF_TEST_REDIS_URL", "redis://127.0.0.1:6379")
DB_KINDS = ["sqlite", "postgresql"]


def redis_database(index: int):
    """(url, client) for a Redis database of its own; fails, never skips, when Redis does not answer."""
    import redis

    url = f"{REDIS_URL.rstrip('/')}/{index}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is required for this test and does not answer at {REDIS_URL}: {exc}")
    return url, client


def _pg_url(name: str) -> str:
    return sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_db():
    """A fresh PostgreSQL database for this test session, migrated; dropped at the end."""
    name = f"rlhf_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for these tests and does not answer at {POSTGRES_ADMIN_URL}: {exc.orig}")
    url = _pg_url(name)
    db.migrate(url)
    yield url
    db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    url = f"sqlite:///{path}"
    db.migrate(url)
    db.get_engine(url).dispose()
    return path


def _truncate_all(url: str) -> None:
    engine = db.get_engine(url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))]
        conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DB_KINDS)
def db_url(request, tmp_path):
    """Each test gets an empty, migrated database: a fresh SQLite file, or emptied PostgreSQL tables."""
    if request.param == "sqlite":
        path = tmp_path / "rlhf.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        yield url
        db.get_engine(url).dispose()
    else:
        url = request.getfixturevalue("postgres_db")
        _truncate_all(url)
        yield url


@pytest.fixture
def settings(db_url, tmp_path, monkeypatch):
    """Settings pointing at this test's database and a data dir under tmp_path (embedded mode)."""
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RLHF_DATABASE_URL", db_url)
    monkeypatch.delenv("RLHF_BROKER_URL", raising=False)
    monkeypatch.setenv("RLHF_SECRET_KEY", "test-secret-key-not-for-production")
    reset_settings_cache()
    from rlhf.settings import get_settings

    yield get_settings()
    reset_settings_cache()


@pytest.fixture
def session(settings):
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        yield s


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The offline tiny chat model, built once per test session."""
    from rlhf.modeling.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
