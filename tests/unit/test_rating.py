"""Giving pairs back and taking votes back: leases released, skips, undo, and the rater's own count."""

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import func, select

from rlhf.errors import Conflict, NotFound, RLHFError
from rlhf.models import Comparison, ComparisonStatus, Skip, Vote, utcnow
from rlhf.services import dataset, runs
from rlhf.services.comparisons import next_for_rater, remaining_for_rater
from rlhf.services.gold import mark_gold
from rlhf.services.rating import release_leases, skip_comparison, snapshot_holds, undo_vote
from rlhf.services.run_data import build_snapshot
from rlhf.services.runs import create_run
from rlhf.services.votes import record_vote
from tests import factories


def test_undo_deletes_the_vote_reopens_the_pair_and_hands_it_back_in_the_same_order(session):
    rater = factories.user(session)
    first, _second = factories.comparisons(session, [("x1", "y1"), ("x2", "y2")])
    shown = next_for_rater(session=session, rater=rater, rng=random.Random(3))
    assert shown.comparison_id == first.id
    vote = record_vote(session=session, rater=rater, comparison_id=first.id, choice="a").vote
    following = next_for_rater(session=session, rater=rater)
    assert following.comparison_id != first.id
    session.refresh(first)
    assert first.status is ComparisonStatus.closed and first.vote_count == 1

    back = undo_vote(session=session, rater=rater, vote_id=vote.id, window_s=30)
    assert (back.comparison_id, back.a, back.b) == (shown.comparison_id, shown.a, shown.b)
    session.refresh(first)
    assert first.status is ComparisonStatus.open and first.vote_count == 0
    assert session.exec(select(func.count()).select_from(Vote)).one() == 0
    # The pair handed out after the vote gave its place back: the undone pair is what shows now.
    again = next_for_rater(session=session, rater=rater)
    assert (again.comparison_id, again.a) == (shown.comparison_id, shown.a)


def test_undo_window_decides_and_only_ones_own_votes_can_be_undone(session):
    alice, bob = factories.user(session, "alice"), factories.user(session, "bob")
    (comp,) = factories.comparisons(session, [("x", "y")])
    vote = record_vote(session=session, rater=alice, comparison_id=comp.id, choice="b").vote
    with pytest.raises(NotFound):
        undo_vote(session=session, rater=bob, vote_id=vote.id, window_s=30)
    vote.created_at = utcnow() - timedelta(seconds=45)
    session.add(vote)
    session.commit()
    with pytest.raises(Conflict, match="within 30 s"):
        undo_vote(session=session, rater=alice, vote_id=vote.id, window_s=30)
    assert undo_vote(session=session, rater=alice, vote_id=vote.id, window_s=60).comparison_id == comp.id


def test_undo_is_refused_once_a_runs_snapshot_holds_the_vote(session):
    rater = factories.user(session)
    (comp,) = factories.comparisons(session, [("x", "y")], serve=True)
    vote = record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a").vote
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    with pytest.raises(Conflict, match=f"run {run.id}"):
        undo_vote(session=session, rater=rater, vote_id=vote.id, window_s=30)
    # The run's data builds, and then verifies against its hash.
    build_snapshot(session=session, run=run)
    assert dataset.snapshot_rows(session=session, snapshot=runs.run_snapshot(session=session, run=run))


def test_a_runs_votes_are_rows_beside_it_and_the_database_keeps_them(session):
    """The run's JSON counts its votes; snapshot_vote names them, and the key to the vote refuses a
    delete that would break the run's hash, whatever code path tries it."""
    rater = factories.user(session)
    *comps, third = factories.comparisons(session, [("x", "y"), ("u", "v"), ("s", "t")], serve=True)
    held = [record_vote(session=session, rater=rater, comparison_id=c.id, choice="a").vote for c in comps]
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    later = record_vote(session=session, rater=rater, comparison_id=third.id, choice="b")
    session.commit()
    assert "vote_ids" not in run.snapshot and run.snapshot["votes"] == 2
    assert runs.held_vote_ids(session=session, run_id=run.id) == sorted(v.id for v in held)
    assert runs.run_snapshot(session=session, run=run).vote_ids == sorted(v.id for v in held)
    assert runs.run_summary(run)["votes"] == 2
    with pytest.raises(RLHFError, match="without the votes it holds"):  # read past the table, it would not verify
        dataset.snapshot_rows(session=session, snapshot=dataset.Snapshot.of(run))
    assert snapshot_holds(session=session, vote_id=held[0].id) == run.id
    assert snapshot_holds(session=session, vote_id=later.vote.id) is None
    with pytest.raises(sa.exc.IntegrityError):
        session.exec(sa.delete(Vote).where(Vote.id == held[0].id))
        session.flush()
    session.rollback()
    assert session.get(Vote, held[0].id) is not None


def test_skip_returns_the_pair_to_others_but_not_to_the_skipper_and_is_recorded(session):
    alice, bob = factories.user(session, "alice"), factories.user(session, "bob")
    first, second = factories.comparisons(session, [("x1", "y1"), ("x2", "y2")])
    assert next_for_rater(session=session, rater=alice).comparison_id == first.id
    skip_comparison(session=session, rater=alice, comparison_id=first.id)
    session.commit()
    assert next_for_rater(session=session, rater=bob).comparison_id == first.id  # alice's place is free
    assert next_for_rater(session=session, rater=alice).comparison_id == second.id
    assert session.exec(select(Skip.rater_id, Skip.comparison_id)).all() == [(alice.id, first.id)]
    # A day later the skipped pair may come back to her.
    skip = session.exec(select(Skip)).one()
    skip.created_at = utcnow() - timedelta(days=1, minutes=1)
    session.add(skip)
    session.commit()
    assert remaining_for_rater(session=session, rater_id=alice.id) == 1  # her lease on the second one


def test_gold_pairs_can_be_skipped_and_a_voted_pair_cannot(session):
    rater = factories.user(session)
    regular, golden = factories.comparisons(session, [("x1", "y1"), ("x2", "y2")])
    mark_gold(session=session, comparison_id=golden.id, answer="a")
    skip_comparison(session=session, rater=rater, comparison_id=golden.id)
    session.commit()
    for _ in range(5):
        handout = next_for_rater(session=session, rater=rater, gold_rate=1.0)
        assert handout.comparison_id == regular.id
    record_vote(session=session, rater=rater, comparison_id=regular.id, choice="a")
    with pytest.raises(Conflict, match="already voted"):
        skip_comparison(session=session, rater=rater, comparison_id=regular.id)


def test_released_leases_free_the_place_at_once(session):
    engineer, rater = factories.user(session, "eng", role="engineer"), factories.user(session, "rita")
    (comp,) = factories.comparisons(session, [("x", "y")])
    assert next_for_rater(session=session, rater=engineer).comparison_id == comp.id
    assert next_for_rater(session=session, rater=rater) is None
    assert release_leases(session=session, rater_id=engineer.id) == 1
    session.commit()
    assert next_for_rater(session=session, rater=rater).comparison_id == comp.id


def test_left_for_you_leaves_out_answered_gold_and_pairs_others_hold(session):
    alice, bob = factories.user(session, "alice"), factories.user(session, "bob")
    one, two, golden = factories.comparisons(session, [("x1", "y1"), ("x2", "y2"), ("g1", "g2")])
    mark_gold(session=session, comparison_id=golden.id, answer="a")
    session.commit()
    assert remaining_for_rater(session=session, rater_id=alice.id) == 3
    record_vote(session=session, rater=alice, comparison_id=golden.id, choice="a")
    assert remaining_for_rater(session=session, rater_id=alice.id) == 2
    assert next_for_rater(session=session, rater=bob).comparison_id == one.id  # bob holds the only place in one
    assert remaining_for_rater(session=session, rater_id=alice.id) == 1
    record_vote(session=session, rater=alice, comparison_id=two.id, choice="b")
    # Open comparisons remain (bob's, and gold), but none alice can be handed.
    assert (
        session.exec(
            select(func.count()).select_from(Comparison).where(Comparison.status == ComparisonStatus.open)
        ).one()
        == 2
    )
    assert remaining_for_rater(session=session, rater_id=alice.id) == 0


def test_a_lease_that_ran_out_is_renewed_in_the_same_order_only_while_its_place_is_free(session):
    from rlhf.models import Assignment

    alice, bob = factories.user(session), factories.user(session, "bob")
    (comp,) = factories.comparisons(session, [("x", "y")])

    def expire_all_leases():
        session.execute(sa.update(Assignment).values(expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()

    first = next_for_rater(session=session, rater=alice, rng=random.Random(1))
    expire_all_leases()
    # Alice comes back after her lease ran out: the same pair, shown the same way round, one lease row.
    again = next_for_rater(session=session, rater=alice, rng=random.Random(2))
    assert (again.comparison_id, again.a, again.b) == (first.comparison_id, first.a, first.b)
    leases = session.exec(select(Assignment).where(Assignment.rater_id == alice.id)).all()
    assert len(leases) == 1 and leases[0].expires_at.replace(tzinfo=None) > utcnow().replace(tzinfo=None)
    expire_all_leases()
    assert next_for_rater(session=session, rater=bob).comparison_id == comp.id
    # Now bob holds its only place: alice's old lease is not renewed over him.
    assert next_for_rater(session=session, rater=alice) is None
    session.expire_all()
    own = session.exec(select(Assignment).where(Assignment.rater_id == alice.id)).one()
    assert own.expires_at.replace(tzinfo=None) < utcnow().replace(tzinfo=None)
