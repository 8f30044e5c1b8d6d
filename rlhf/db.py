"""Engine, sessions and migrations.

SQLite is the embedded default (WAL, so raters' reads never wait on a writer);
PostgreSQL is the deployment database. Schema changes only through Alembic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from rlhf.errors import ConfigError
from rlhf.settings import get_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: a PostgreSQL restart leaves dead pooled connections; check before use (about
    # 0.1 ms a checkout here).
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    event.listen(engine, "connect", _postgres_session)
    return engine


def _postgres_session(dbapi_conn, _record) -> None:
    # The app's statements are short, and PostgreSQL's JIT compiled the bigger ones (the count of
    # a rater's open pairs) for 0.18 s to save nothing on 0.15 s of work. A SET, not a startup
    # option, which connection poolers such as PgBouncer refuse; committed, or the pool's reset
    # would undo it.
    with dbapi_conn.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_conn.commit()


def engine_from_settings() -> Engine:
    return get_engine(get_settings().database_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = Session(engine or engine_from_settings(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def wait_for_database(url: str, timeout_s: float = 60.0) -> None:
    """Start-up waits for the database (compose starts everything at once)."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    try:
        for attempt in Retrying(
            retry=retry_if_exception_type(sa.exc.OperationalError),
            wait=wait_fixed(1.0),
            stop=stop_after_delay(timeout_s),
            reraise=True,
        ):
            with attempt, get_engine(url).connect() as conn:
                conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        raise ConfigError(
            f"database at {sa.engine.make_url(url).render_as_string(hide_password=True)} does not answer: {exc.orig}"
        ) from exc


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic logs every revision it applies at INFO; a fresh database applies them all, which
    would open every console (the demo's first of all) with a page of them. They show at DEBUG."""
    alembic_log = logging.getLogger("alembic")
    if alembic_log.getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    previous = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(previous)


def _schema_revision(url: str) -> str | None:
    from alembic.migration import MigrationContext

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(url: str) -> None:
    """Bring the schema to the newest revision; safe to run again and again.

    Upgrading an existing database logs one line at INFO (from which revision to which);
    creating a new one, or finding it current, logs only at DEBUG.
    """
    from alembic import command

    with _alembic_quiet():
        before = _schema_revision(url)
        command.upgrade(_alembic_config(url), "head")
        after = _schema_revision(url)
    if before == after:
        log.debug("database schema at revision %s", after)
    elif before is None:
        log.debug("database schema created at revision %s", after)
    else:
        log.info("database schema upgraded from revision %s to %s", before, after)
