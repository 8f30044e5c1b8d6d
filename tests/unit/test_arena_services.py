"""Arena rules that need no engine: fair pairing, expiry, the prompt pool, SFT on demonstrations, the migration."""

from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import select

from rlhf import db
from rlhf.inference.client import Completion
from rlhf.models import Comparison, ComparisonStatus, Prompt
from rlhf.services import arena
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.demonstrations import record_demonstration
from rlhf.services.prompts import list_prompts
from rlhf.services.runs import create_run
from rlhf.settings import Settings
from tests import factories

HELLO = [{"role": "user", "content": "Hi?"}]


def _battle(session, rater, settings, rng):
    plan = arena.plan_battle(session=session, rater=rater, messages=HELLO, settings=settings, rng=rng)
    return plan, arena.store_battle(
        session=session, rater=rater, plan=plan, answers=(Completion("one", True), Completion("two", True)), ttl_s=60
    )


def test_battles_go_to_the_pair_compared_least(rollback_session):
    s = rollback_session
    settings = Settings(arena_battles_per_minute=1000, secret_key="x" * 20)
    rater = factories.user(s, "r")
    for name in ("x", "y", "z"):
        register_checkpoint(session=s, path=f"org/{name}", name=name, serve=True)
    rng = random.Random(0)
    pairs = [frozenset((p.a.name, p.b.name)) for p, _ in (_battle(s, rater, settings, rng) for _ in range(9))]
    # Three checkpoints, three pairs: nine battles are three of each, never a checkpoint against itself.
    assert {pair: pairs.count(pair) for pair in set(pairs)} == {
        frozenset("xy"): 3,
        frozenset("xz"): 3,
        frozenset("yz"): 3,
    }
    assert set(pairs[:3]) == {frozenset("xy"), frozenset("xz"), frozenset("yz")}


def test_one_serving_checkpoint_battles_itself_with_two_seeds(rollback_session):
    s = rollback_session
    rater = factories.user(s, "r")
    register_checkpoint(session=s, path="org/x", name="x", serve=True)
    plan = arena.plan_battle(session=s, rater=rater, messages=HELLO, settings=Settings(secret_key="x" * 20))
    assert plan.a.checkpoint_id == plan.b.checkpoint_id and plan.a.sampling.seed != plan.b.sampling.seed


def test_unvoted_battles_expire_and_arena_prompts_stay_out_of_the_pool_until_promoted(rollback_session):
    s = rollback_session
    settings = Settings(secret_key="x" * 20)
    rater = factories.user(s, "r")
    register_checkpoint(session=s, path="org/x", name="x", serve=True)
    _, comp = _battle(s, rater, settings, random.Random(1))
    assert list_prompts(session=s) == []
    s.execute(
        sa.update(Comparison).where(Comparison.id == comp.id).values(created_at=comp.created_at - timedelta(hours=2))
    )
    assert arena.expire_battles(session=s, ttl_s=3600) == 1
    s.refresh(comp)
    assert comp.status is ComparisonStatus.expired
    assert arena.arena_counts(session=s)["expired"] == 1
    arena.promote_prompts(session=s, prompt_ids=[comp.prompt_id])
    assert [p.id for p in list_prompts(session=s)] == [comp.prompt_id]


def test_sft_runs_train_on_stored_demonstrations_by_default(rollback_session):
    s = rollback_session
    rater = factories.user(s, "r")
    register_checkpoint(session=s, path="org/x", name="x", serve=True)
    demo = record_demonstration(session=s, rater=rater, messages=HELLO, text="Hello!")
    run = create_run(session=s, algorithm="sft")
    assert run.snapshot["demonstration_ids"] == [demo.id] and run.snapshot["rows"] == 1


def test_upgrade_keeps_comparisons_in_the_queue_and_prompts_in_the_pool(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(db._alembic_config(url), "0002")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO prompt (messages, tags, created_at) VALUES ('[]', '[]', '2026-01-01')"))
        conn.execute(
            sa.text(
                "INSERT INTO checkpoint (name, kind, status, path, metrics, created_at) "
                "VALUES ('c', 'policy', 'serving', 'p', '{}', '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO response (prompt_id, checkpoint_id, text, params, finished, created_at) "
                "VALUES (1, 1, 'a', '{}', 1, '2026-01-01'), (1, 1, 'b', '{}', 1, '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO comparison (prompt_id, response_a_id, response_b_id, status, target_votes, "
                "strategy, vote_count, is_gold, created_at) VALUES (1, 1, 2, 'open', 1, 'random', 0, 0, "
                "'2026-01-01')"
            )
        )
    engine.dispose()
    db.migrate(url)
    with db.session_scope(db.get_engine(url)) as s:
        assert s.exec(select(Comparison.source)).one().value == "queue"
        assert s.exec(select(Prompt.in_pool, Prompt.source)).one() == (True, "import")
    db.get_engine(url).dispose()
