"""A vote says what kind it is, and a pair says when it goes out: the hand-out's order, the rate queue's one
predicate, and simulated votes and machine labels listed and removed by kind."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import func, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import PRIORITY_REGULAR, Choice, Comparison, ComparisonSource, ComparisonStatus, Skip, Vote, VoteKind
from rlhf.services import dataset, runs
from rlhf.services.comparisons import next_for_rater, open_comparison, remaining_for_rater
from rlhf.services.machine_labels import record_machine_labels
from rlhf.services.rating import skip_comparison
from rlhf.services.run_data import build_snapshot
from rlhf.services.runs import create_run
from rlhf.services.simulate import simulate
from rlhf.services.stats import overall_stats
from rlhf.services.vote_admin import counts_by_kind, list_votes, remove_votes
from rlhf.services.votes import record_vote
from tests import factories


def _hand_out_all(session, rater) -> list[int]:
    seen = []
    while (handout := next_for_rater(session=session, rater=rater)) is not None:
        seen.append(handout.comparison_id)
        record_vote(session=session, rater=rater, comparison_id=handout.comparison_id, choice="a")
    return seen


def test_pairs_go_out_uncertain_first_then_regular_then_machine_labelled(session):
    regular = factories.comparisons(session, [("x0", "y0"), ("x1", "y1"), ("x2", "y2")])
    # Opened after the regular ones, but a reward model is unsure of it: a person's vote teaches the most.
    late = regular[0]
    uncertain = open_comparison(
        session=session,
        prompt_id=late.prompt_id,
        response_a_id=late.response_a_id,
        response_b_id=late.response_b_id,
        strategy="uncertain",
    )
    session.commit()
    record_machine_labels(session=session, reward_checkpoint_id=1, labels=[(regular[0].id, Choice.a, 0.95)])
    session.commit()
    assert session.get(Comparison, regular[0].id).priority > PRIORITY_REGULAR > uncertain.priority
    assert _hand_out_all(session, factories.user(session)) == [
        uncertain.id,
        regular[1].id,
        regular[2].id,
        regular[0].id,
    ]


def test_the_hand_out_reads_the_priority_index_and_sorts_nothing(session):
    factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(20)])
    rater = factories.user(session)
    statements = []

    def keep(conn, cursor, statement, params, context, many):
        statements.append((statement, params))

    sa.event.listen(session.bind, "before_cursor_execute", keep)
    try:
        next_for_rater(session=session, rater=rater)
    finally:
        sa.event.remove(session.bind, "before_cursor_execute", keep)
    statement, params = next(s for s in statements if "ORDER BY comparison.priority, comparison.id" in s[0])
    conn = session.connection()
    if session.bind.dialect.name == "sqlite":
        plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
        assert "ix_comparison_handout" in plan and "TEMP B-TREE FOR ORDER BY" not in plan, plan
    else:
        # Twenty rows make a sequential scan cheapest; with it priced out, the planner's choice shows
        # whether an index gives the order: one that does needs no Sort node.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = " | ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params))
        assert "ix_comparison_handout" in plan and " Sort " not in f" {plan} ", plan
    session.rollback()


def test_a_raters_open_arena_battle_is_not_left_for_them_nor_skippable_in_the_queue(session):
    rater = factories.user(session)
    queue_pair, battle = factories.comparisons(session, [("x", "y"), ("p", "q")])
    battle.source = ComparisonSource.arena
    session.add(battle)
    session.commit()
    assert remaining_for_rater(session=session, rater_id=rater.id) == 1
    with pytest.raises(Conflict, match="not in the rate queue"):
        skip_comparison(session=session, rater=rater, comparison_id=battle.id)
    # A second click on Skip is the same skip, not a second one.
    first = skip_comparison(session=session, rater=rater, comparison_id=queue_pair.id)
    session.commit()
    assert skip_comparison(session=session, rater=rater, comparison_id=queue_pair.id).id == first.id
    assert session.exec(select(func.count()).select_from(Skip)).one() == 1
    assert remaining_for_rater(session=session, rater_id=rater.id) == 0


def test_simulated_votes_count_like_peoples_and_are_listed_and_removed_by_kind(session):
    person = factories.user(session, "person")
    comps = factories.comparisons(
        session, [("short", "longer one"), ("tiny", "a bit longer"), ("a", "bb")], target_votes=1, serve=True
    )
    record_vote(session=session, rater=person, comparison_id=comps[0].id, choice="a", as_shown=False)
    assert simulate(session=session, rule="shorter")["votes"] == 2
    session.expire_all()
    # They fill targets and count in the statistics as people's do, but their kind tells them apart.
    assert all(session.get(Comparison, c.id).status is ComparisonStatus.closed for c in comps)
    stats = overall_stats(session=session)
    assert stats["votes"] == 3 and stats["votes_by_kind"] == {"human": 1, "simulated": 2}
    assert counts_by_kind(session=session) == {"human": 1, "simulated": 2, "machine": 0, "judge": 0}
    listed = list_votes(session=session, kind="simulated")
    assert [(v["kind"], v["source"]) for v in listed] == [("simulated", "simulated:shorter")] * 2

    removed = remove_votes(session=session, kind="simulated")
    assert (removed.removed, removed.kept_for_runs, removed.reopened) == (2, 0, 2)
    session.expire_all()
    assert [session.get(Comparison, c.id).status for c in comps] == [
        ComparisonStatus.closed,
        ComparisonStatus.open,
        ComparisonStatus.open,
    ]
    assert [session.get(Comparison, c.id).vote_count for c in comps] == [1, 0, 0]
    assert counts_by_kind(session=session)["human"] == 1  # the person's vote is untouched
    # The reopened pairs go to people.
    assert _hand_out_all(session, factories.user(session, "other")) == [comps[1].id, comps[2].id]


def test_people_votes_are_never_removed_in_bulk_and_a_runs_votes_stay(session):
    comps = factories.comparisons(session, [("short", "longer one"), ("tiny", "a bit longer")], serve=True)
    simulate(session=session, rule="shorter")
    with pytest.raises(InvalidInput, match="people's"):
        remove_votes(session=session, kind="human")
    with pytest.raises(InvalidInput, match="unknown vote kind"):
        remove_votes(session=session, kind="robot")
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    removed = remove_votes(session=session, kind="simulated")
    assert (removed.removed, removed.kept_for_runs) == (0, 2)
    build_snapshot(session=session, run=run)
    snapshot = runs.run_snapshot(session=session, run=run)
    assert dataset.snapshot_rows(session=session, snapshot=snapshot)  # still verifies
    assert len(comps) == 2


def test_removing_machine_labels_puts_pairs_back_in_their_place(session):
    comps = factories.comparisons(session, [("x0", "y0"), ("x1", "y1")])
    record_machine_labels(session=session, reward_checkpoint_id=3, labels=[(comps[0].id, Choice.b, 0.9)])
    session.commit()
    assert remove_votes(session=session, kind="machine", source="machine:4").removed == 0  # another model's
    assert remove_votes(session=session, kind="machine", source="machine:3").removed == 1
    session.expire_all()
    assert session.get(Comparison, comps[0].id).priority == PRIORITY_REGULAR
    assert session.exec(select(func.count()).select_from(Vote).where(Vote.kind == VoteKind.machine)).one() == 0
    assert _hand_out_all(session, factories.user(session)) == [comps[0].id, comps[1].id]
