"""Shared fixtures: real databases (SQLite file and PostgreSQL), settings, the tiny model.

PostgreSQL and Redis are real servers. ``RLHF_TEST_POSTGRES_URL`` / ``RLHF_TEST_REDIS_URL``
point at them (defaults: the local ones); ``scripts/test`` starts them when nothing
answers, and a test that needs one fails (never skips) when it is missing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

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


@contextlib.contextmanager
def _postgres_database(prefix: str):
    """A new, migrated PostgreSQL database, dropped afterwards; fails (never skips) without a server."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for these tests and does not answer at {POSTGRES_ADMIN_URL}: {exc.orig}")
    url = _pg_url(name)
    db.migrate(url)
    try:
        yield url
    finally:
        db.get_engine(url).dispose()
        db.get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_db():
    """A fresh PostgreSQL database for this test session, migrated; dropped at the end."""
    with _postgres_database("rlhf_test") as url:
        yield url


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
        tables = [
            r[0]
            for r in conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'")
            )
        ]
        conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DB_KINDS)
def fresh_db_url(request, tmp_path):
    """An empty, migrated database per test: a fresh SQLite file, or emptied PostgreSQL tables.

    For tests whose data must be committed: the app, a worker or a browser reads it
    through connections of their own.
    """
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
def db_url(fresh_db_url):
    return fresh_db_url


@pytest.fixture(scope="session")
def rollback_databases(sqlite_template, tmp_path_factory):
    """One migrated database per kind for tests that roll back: nothing is ever committed to them."""
    path = tmp_path_factory.mktemp("rollback") / "rlhf.db"
    shutil.copy(sqlite_template, path)
    with _postgres_database("rlhf_rollback") as pg_url:
        urls = {"sqlite": f"sqlite:///{path}", "postgresql": pg_url}
        yield urls
        leaks = []
        for kind, url in urls.items():
            with _rollback_engine(url).connect() as conn:
                leaks += [
                    f"{kind}: {table}"
                    for table in ('"user"', "prompt", "vote", "checkpoint")
                    if conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                ]
            _rollback_engine(url).dispose()
    # A test that committed past its rollback would leak rows into every later test here.
    assert not leaks, f"rows committed to the rollback databases (a test there must not commit): {leaks}"


@pytest.fixture(params=DB_KINDS)
def rollback_db_url(request, rollback_databases):
    return rollback_databases[request.param]


@functools.lru_cache(maxsize=4)
def _rollback_engine(url: str):
    """PostgreSQL: the app's engine. SQLite: one that really opens transactions and savepoints.

    pysqlite begins a transaction only before a write and cannot nest one, so a savepoint
    inside an outer transaction needs SQLAlchemy's recipe: no driver transactions, and an
    explicit BEGIN (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#pysqlite-serializable).
    """
    if not url.startswith("sqlite"):
        return db.get_engine(url)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


@pytest.fixture
def rollback_session(db_url):
    """A session inside one transaction that is rolled back when the test ends (Argilla's pattern).

    A service's ``commit()`` only releases a savepoint, so code that commits works as in
    production and leaves nothing behind; no table is emptied between tests. Only for tests
    in which nothing else (the app, a worker, another thread) must see the data.
    """
    connection = _rollback_engine(db_url).connect()
    outer = connection.begin()
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        outer.rollback()
        connection.close()


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
def committed_session(settings):
    """A session on the test's fresh database whose work is committed (when the test commits, and at its end)."""
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        yield s


@pytest.fixture
def session(committed_session):
    return committed_session


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The offline tiny chat model, built once per test session."""
    from rlhf.modeling.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def reward_dir(tiny_model_dir, tmp_path_factory):
    """A reward model on the tiny model's backbone with a seeded scoring head, saved like a trained one."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("reward") / "rm"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium for every browser test of the run (tests/browser, tests/security): Playwright's
    sync API allows one instance per process, so the fixture lives here, once."""
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"browser tests need Chromium at {CHROMIUM} (set RLHF_TEST_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
