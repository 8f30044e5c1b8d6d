"""The Alembic history builds exactly the tables the code declares, and upgrades keep data."""

from __future__ import annotations

import contextlib
import json

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import rlhf.models  # noqa: F401  (registers the tables)
from rlhf import db


def test_migrations_match_the_models(db_url):
    engine = db.get_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_upgrade_from_the_first_schema_counts_existing_votes(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = db._alembic_config(url)
    command.upgrade(cfg, "0001")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO user (name, role, password_hash, active, created_at) "
                "VALUES ('r1', 'rater', 'x', 1, '2026-01-01'), ('r2', 'rater', 'x', 1, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO checkpoint (name, kind, status, path, metrics, created_at) "
                "VALUES ('c', 'policy', 'serving', 'p', '{}', '2026-01-01')"
            )
        )
        conn.execute(sa.text("INSERT INTO prompt (messages, tags, created_at) VALUES ('[]', '[]', '2026-01-01')"))
        conn.execute(
            sa.text(
                "INSERT INTO response (prompt_id, checkpoint_id, text, params, finished, created_at) "
                "VALUES (1, 1, 'a', '{}', 1, '2026-01-01'), (1, 1, 'b', '{}', 1, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO comparison (prompt_id, response_a_id, response_b_id, status, target_votes, "
                "strategy, created_at) VALUES (1, 1, 2, 'open', 3, 'random', '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO vote (comparison_id, rater_id, choice, shown_swapped, source, created_at) "
                "VALUES (1, 1, 'a', 0, 'human', '2026-01-01'), (1, 2, 'b', 0, 'human', '2026-01-01')"
            )
        )
    engine.dispose()
    db.migrate(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT vote_count, is_gold FROM comparison")).one() == (2, 0)
        assert conn.execute(sa.text("SELECT excluded FROM user WHERE name = 'r1'")).scalar_one() == 0
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_adapters_migration_keeps_checkpoints_as_full_models_and_goes_both_ways(kind, tmp_path):
    from tests.conftest import _postgres_database

    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'old.db'}"
            if kind == "sqlite"
            else stack.enter_context(_postgres_database("rlhf_mig"))
        )
        cfg = db._alembic_config(url)
        command.downgrade(cfg, "0004") if kind == "postgresql" else command.upgrade(cfg, "0004")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO checkpoint (name, kind, status, path, metrics, created_at) "
                    "VALUES ('c', 'policy', 'serving', 'p', '{}', '2026-01-01')"
                )
            )
        command.upgrade(cfg, "0005")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name, adapter, base_checkpoint_id FROM checkpoint")).one() == (
                "c",
                None,
                None,
            )
        command.downgrade(cfg, "0004")
        with engine.connect() as conn:
            assert "adapter" not in {c["name"] for c in sa.inspect(conn).get_columns("checkpoint")}
        command.upgrade(cfg, "head")
        engine.dispose()


def test_machine_labels_migration_keeps_votes_and_downgrades(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = db._alembic_config(url)
    command.upgrade(cfg, "0004")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO user (name, role, password_hash, active, excluded, created_at) "
                "VALUES ('r1', 'rater', 'x', 1, 0, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO prompt (messages, tags, source, in_pool, created_at) "
                "VALUES ('[]', '[]', 'import', 1, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO response (prompt_id, text, params, finished, created_at) "
                "VALUES (1, 'a', '{}', 1, '2026-01-01'), (1, 'b', '{}', 1, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO comparison (prompt_id, response_a_id, response_b_id, status, target_votes, "
                "vote_count, strategy, is_gold, source, created_at) "
                "VALUES (1, 1, 2, 'open', 3, 1, 'random', 0, 'queue', '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO vote (comparison_id, rater_id, choice, shown_swapped, source, created_at) "
                "VALUES (1, 1, 'a', 0, 'human', '2026-01-01')"
            )
        )
    engine.dispose()
    command.upgrade(cfg, "0006")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT choice, label_p FROM vote")).one() == ("a", None)
        assert conn.execute(sa.text("SELECT count(*) FROM labeljob")).scalar_one() == 0
    engine.dispose()
    command.downgrade(cfg, "0004")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT choice FROM vote")).scalar_one() == "a"
        assert "labeljob" not in sa.inspect(conn).get_table_names()
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_vote_kind_migration_reads_the_kind_from_the_source_and_orders_the_queue(kind, tmp_path):
    """Votes stored before kinds were a column keep whose they are; machine-labelled pairs go out last,
    uncertain ones first, as they did."""
    from tests.conftest import _postgres_database

    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'old.db'}"
            if kind == "sqlite"
            else stack.enter_context(_postgres_database("rlhf_mig"))
        )
        _vote_kind_migration(url)


def _vote_kind_migration(url: str) -> None:
    cfg = db._alembic_config(url)
    command.downgrade(cfg, "0007") if url.startswith("postgresql") else command.upgrade(cfg, "0007")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                'INSERT INTO "user" (name, role, password_hash, active, excluded, created_at) '
                "VALUES ('r1', 'rater', 'x', true, false, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO prompt (messages, tags, source, in_pool, created_at) "
                "VALUES ('[]', '[]', 'import', true, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO response (prompt_id, text, params, finished, created_at) "
                "VALUES (1, 'a', '{}', true, '2026-01-01'), (1, 'b', '{}', true, '2026-01-01')"
            )
        )
        for strategy in ("random", "uncertain", "random"):
            conn.execute(
                sa.text(
                    "INSERT INTO comparison (prompt_id, response_a_id, response_b_id, status, "
                    "target_votes, vote_count, strategy, is_gold, source, created_at) "
                    f"VALUES (1, 1, 2, 'open', 3, 0, '{strategy}', false, 'queue', '2026-01-01')"
                )
            )
        for comp, source in ((1, "human"), (2, "simulated:shorter"), (3, "machine:7")):
            conn.execute(
                sa.text(
                    "INSERT INTO vote (comparison_id, rater_id, choice, shown_swapped, source, "
                    f"created_at) VALUES ({comp}, 1, 'a', false, '{source}', '2026-01-01')"
                )
            )
    engine.dispose()
    command.upgrade(cfg, "0008")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT source, kind FROM vote ORDER BY id")).all() == [
            ("human", "human"),
            ("simulated:shorter", "simulated"),
            ("machine:7", "machine"),
        ]
        assert conn.execute(sa.text("SELECT id, priority FROM comparison ORDER BY id")).all() == [
            (1, 20),
            (2, 10),
            (3, 40),
        ]
    engine.dispose()
    command.downgrade(cfg, "0007")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM vote")).scalar_one() == 3
        assert "kind" not in {c["name"] for c in sa.inspect(conn).get_columns("vote")}
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_snapshot_vote_migration_copies_the_held_votes_and_gives_new_snapshots_their_list_back(kind, tmp_path):
    """Runs stored with their votes listed in the JSON get the same votes as snapshot_vote rows; a
    downgrade writes the list back into snapshots that only the table held."""
    from tests.conftest import _postgres_database

    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'old.db'}"
            if kind == "sqlite"
            else stack.enter_context(_postgres_database("rlhf_mig"))
        )
        _snapshot_vote_migration(url)


def _insert_run(conn, snapshot: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO trainingrun (algorithm, status, params, snapshot, snapshot_hash, progress, metrics, "
            "serve_on_success, cancel_requested, created_at) "
            f"VALUES ('dpo', 'succeeded', '{{}}', '{snapshot}', 'h', '{{}}', '{{}}', false, false, '2026-01-01')"
        )
    )


def _snapshot_vote_migration(url: str) -> None:
    cfg = db._alembic_config(url)
    command.downgrade(cfg, "0009") if url.startswith("postgresql") else command.upgrade(cfg, "0009")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                'INSERT INTO "user" (name, role, password_hash, active, excluded, created_at) '
                "VALUES ('r1', 'rater', 'x', true, false, '2026-01-01'), ('r2', 'rater', 'x', true, false, "
                "'2026-01-01'), ('r3', 'rater', 'x', true, false, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO prompt (messages, tags, source, in_pool, created_at) "
                "VALUES ('[]', '[]', 'import', true, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO response (prompt_id, text, params, finished, created_at) "
                "VALUES (1, 'a', '{}', true, '2026-01-01'), (1, 'b', '{}', true, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO comparison (prompt_id, response_a_id, response_b_id, status, target_votes, vote_count, "
                "strategy, is_gold, source, priority, created_at) "
                "VALUES (1, 1, 2, 'done', 3, 3, 'random', false, 'queue', 20, '2026-01-01')"
            )
        )
        for rater in (1, 2, 3):
            conn.execute(
                sa.text(
                    "INSERT INTO vote (comparison_id, rater_id, choice, shown_swapped, source, kind, created_at) "
                    f"VALUES (1, {rater}, 'a', false, 'human', 'human', '2026-01-01')"
                )
            )
        # Vote 9 no longer exists: a list may name a vote removed since (it is not copied).
        _insert_run(conn, '{"vote_ids": [1, 2, 9], "rows": 1, "hash": "h", "aggregate": "majority"}')
    engine.dispose()
    command.upgrade(cfg, "0010")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT run_id, vote_id FROM snapshot_vote ORDER BY vote_id")).all() == [
            (1, 1),
            (1, 2),
        ]
        # A run stored since: its JSON counts the votes, the table names them.
        _insert_run(conn, '{"votes": 1, "rows": 1, "hash": "h", "aggregate": "none"}')
        conn.execute(sa.text("INSERT INTO snapshot_vote (run_id, vote_id) VALUES (2, 3)"))
    engine.dispose()
    command.downgrade(cfg, "0009")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert "snapshot_vote" not in sa.inspect(conn).get_table_names()
        stored = [
            json.loads(s) if isinstance(s, str) else s
            for (s,) in conn.execute(sa.text("SELECT snapshot FROM trainingrun ORDER BY id"))
        ]
    engine.dispose()
    assert stored[0]["vote_ids"] == [1, 2, 9]  # left as it was
    assert stored[1] == {"vote_ids": [3], "rows": 1, "hash": "h", "aggregate": "none"}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_rankings_migration_keeps_votes_and_goes_both_ways(kind, tmp_path):
    """Pairs and votes stored before rankings existed belong to no ranking, and a downgrade keeps them."""
    from tests.conftest import _postgres_database

    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'old.db'}"
            if kind == "sqlite"
            else stack.enter_context(_postgres_database("rlhf_mig_rank"))
        )
        cfg = db._alembic_config(url)
        command.downgrade(cfg, "0012") if url.startswith("postgresql") else command.upgrade(cfg, "0012")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for statement in (
                'INSERT INTO "user" (name, role, password_hash, active, excluded, created_at) '
                "VALUES ('r1', 'rater', 'x', true, false, '2026-01-01')",
                "INSERT INTO prompt (messages, tags, source, in_pool, created_at) "
                "VALUES ('[]', '[]', 'import', true, '2026-01-01')",
                "INSERT INTO response (prompt_id, text, params, finished, created_at) "
                "VALUES (1, 'a', '{}', true, '2026-01-01'), (1, 'b', '{}', true, '2026-01-01')",
                "INSERT INTO comparison (prompt_id, response_a_id, response_b_id, status, target_votes, vote_count, "
                "strategy, is_gold, source, priority, created_at) "
                "VALUES (1, 1, 2, 'closed', 1, 1, 'random', false, 'queue', 20, '2026-01-01')",
                "INSERT INTO vote (comparison_id, rater_id, choice, shown_swapped, kind, source, strength, created_at) "
                "VALUES (1, 1, 'a', false, 'human', 'human', 2, '2026-01-01')",
            ):
                conn.execute(sa.text(statement))
        engine.dispose()
        command.upgrade(cfg, "0013")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT choice, strength, ranking_id FROM vote")).one() == ("a", 2, None)
            assert conn.execute(sa.text("SELECT ranking_id FROM comparison")).scalar_one() is None
            assert conn.execute(sa.text("SELECT count(*) FROM ranking")).scalar_one() == 0
        engine.dispose()
        command.downgrade(cfg, "0012")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT choice, strength FROM vote")).one() == ("a", 2)
            assert "ranking" not in sa.inspect(conn).get_table_names()
            assert "ranking_id" not in {c["name"] for c in sa.inspect(conn).get_columns("vote")}
        engine.dispose()
        command.upgrade(cfg, "head")
