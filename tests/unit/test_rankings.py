"""Rankings: K answers ordered in one judgement, stored as their pairs' votes, handed out and taken back."""

import random
from datetime import timedelta

import pytest
from sqlmodel import select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import (
    PRIORITY_UNCERTAIN,
    Choice,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    RankingLease,
    Response,
    Vote,
    utcnow,
)
from rlhf.services import rankings, rating
from rlhf.services.ranking_orders import order_from_choices, pair_choices, parse_order
from rlhf.services.votes import record_vote
from tests import factories


def _by_text(session, ranking) -> dict[tuple[str, str], str]:
    """Each stored vote of the ranking as (text a, text b) -> choice, in the pair's own order."""
    out = {}
    for vote in session.exec(select(Vote).where(Vote.ranking_id == ranking.id)):
        comp = session.get(Comparison, vote.comparison_id)
        a, b = (session.get(Response, rid).text for rid in (comp.response_a_id, comp.response_b_id))
        out[(a, b)] = vote.choice.value
    return out


def test_a_ranking_is_its_pairs_with_identical_answers_dropped(session):
    ranking = factories.ranking(session, ["w", "x", " w ", "y", "z"], target_votes=2)
    texts = [session.get(Response, r).text for r in ranking.response_ids]
    assert texts == ["w", "x", "y", "z"]  # " w " is "w" again: nothing to choose between them
    pairs = list(session.exec(select(Comparison).where(Comparison.ranking_id == ranking.id)))
    assert len(pairs) == 6
    assert {p.source for p in pairs} == {ComparisonSource.ranking}
    assert {p.target_votes for p in pairs} == {2}
    assert factories.ranking(session, ["same", "same "]) is None


def test_an_order_must_place_every_answer_once():
    assert parse_order([[2], [0, 3], [1]], 4) == [[2], [0, 3], [1]]
    assert parse_order([1, 0, [2]], 3) == [[1], [0], [2]]
    for order, message in [
        ([[0], [1], [2]], "leaves out answer 3"),
        ([[0], [1]], "leaves out answers 2, 3"),
        ([[0, 1], [1], [2, 3]], "names answer 1 twice"),
        ([[0], [1], [2], [3], [4]], "names answer 4, and there are 4 answers"),
        ([[0], [], [1, 2, 3]], "empty group"),
        ([], "a list of groups"),
        ([["a"], [0, 1, 2, 3]], "names 'a'"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_order(order, 4)


def test_an_order_says_each_pair_and_is_read_back_from_the_votes():
    shown = [11, 12, 13, 14]  # response ids, as the rater saw them
    choices = pair_choices([[2], [0, 3], [1]], shown)  # 13 best, then 11 and 14 together, 12 last
    assert choices[(13, 11)] is Choice.a and choices[(11, 13)] is Choice.b
    assert choices[(11, 14)] is Choice.tie and choices[(12, 14)] is Choice.b
    said = [(a, b, choices[(a, b)]) for a, b in [(11, 12), (11, 13), (11, 14), (12, 13), (12, 14), (13, 14)]]
    assert order_from_choices(said, shown) == [[2], [0, 3], [1]]
    top_tie = pair_choices([[0, 1], [2]], [1, 2, 3])
    assert top_tie[(1, 2)] is Choice.tie and top_tie[(1, 3)] is Choice.a  # a tied top group is all "best"


def test_a_rater_orders_what_was_shown_and_the_votes_hold_what_was_meant(session):
    rater = factories.user(session)
    ranking = factories.ranking(session, ["w", "x", "y", "z"])
    shown = rankings.next_ranking_for_rater(session=session, rater=rater, rng=random.Random(5))
    assert sorted(shown.answers) == ["w", "x", "y", "z"]
    # Asked again, the same ranking in the same order (the lease keeps it).
    assert rankings.next_ranking_for_rater(session=session, rater=rater).answers == shown.answers
    pos = {text: n for n, text in enumerate(shown.answers)}
    result = rankings.submit_ranking(
        session=session,
        rater=rater,
        ranking_id=ranking.id,
        order=[[pos["y"]], [pos["w"], pos["z"]], [pos["x"]]],
        rationale="y answers it",
    )
    assert result.created and len(result.vote_ids) == 6
    assert _by_text(session, ranking) == {
        ("w", "x"): "a",
        ("w", "y"): "b",
        ("w", "z"): "tie",
        ("x", "y"): "b",
        ("x", "z"): "b",
        ("y", "z"): "a",
    }
    votes = list(session.exec(select(Vote).where(Vote.ranking_id == ranking.id)))
    assert {v.rationale for v in votes} == {"y answers it"} and {v.rater_id for v in votes} == {rater.id}
    session.refresh(ranking)
    assert ranking.status is ComparisonStatus.closed and ranking.vote_count == 1
    assert {c.status for c in session.exec(select(Comparison).where(Comparison.ranking_id == ranking.id))} == {
        ComparisonStatus.closed
    }
    # A repeat returns the stored order, whatever it says now; nothing more is stored.
    again = rankings.submit_ranking(session=session, rater=rater, ranking_id=ranking.id, order=[[0], [1], [2], [3]])
    assert not again.created and again.order == result.order and again.vote_ids == result.vote_ids
    assert rankings.next_ranking_for_rater(session=session, rater=rater) is None


def test_a_bad_order_stores_nothing_and_an_unhanded_ranking_is_refused(session):
    alice, bob = factories.user(session, "alice"), factories.user(session, "bob")
    ranking = factories.ranking(session, ["w", "x", "y"])
    with pytest.raises(Conflict, match="not handed to you"):
        rankings.submit_ranking(session=session, rater=bob, ranking_id=ranking.id, order=[[0], [1], [2]])
    rankings.next_ranking_for_rater(session=session, rater=alice)
    with pytest.raises(InvalidInput, match="leaves out answer 2"):
        rankings.submit_ranking(session=session, rater=alice, ranking_id=ranking.id, order=[[0], [1]])
    with pytest.raises(NotFound):
        rankings.submit_ranking(session=session, rater=alice, ranking_id=ranking.id + 99, order=[[0], [1], [2]])
    assert session.exec(select(Vote)).all() == []


def test_the_pairs_of_a_ranking_are_never_voted_on_alone(session):
    rater = factories.user(session)
    ranking = factories.ranking(session, ["w", "x", "y"])
    comp = session.exec(select(Comparison).where(Comparison.ranking_id == ranking.id)).first()
    with pytest.raises(Conflict, match=f"one pair of ranking {ranking.id}"):
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    # Nor handed out as pairs.
    assert rating.next_item(session=session, rater=rater, kinds=("pair",)) is None


def test_undo_takes_back_the_whole_order_and_hands_the_ranking_back_as_it_was(session):
    rater = factories.user(session)
    ranking = factories.ranking(session, ["w", "x", "y", "z"])
    factories.comparisons(session, [("p", "q")])
    shown = rating.next_item(session=session, rater=rater, kinds=("pair", "ranking"))
    assert isinstance(shown, rankings.RankingHandout)
    result, following = rating.rank_then_next(
        session=session, rater=rater, ranking_id=ranking.id, order=[[3], [2], [1], [0]]
    )
    assert following is not None and not isinstance(following, rankings.RankingHandout)  # the pair, next
    vote = session.get(Vote, result.vote_ids[0])
    with pytest.raises(Conflict, match=f"one pair of your order of ranking {ranking.id}"):
        rating.undo_vote(session=session, rater=rater, vote_id=vote.id, window_s=30)
    with pytest.raises(Conflict, match=f"one pair of your order of ranking {ranking.id}"):
        rating.set_strength(session=session, rater=rater, vote_id=vote.id, strength=2, window_s=30)

    back = rating.undo_ranking(session=session, rater=rater, ranking_id=ranking.id, window_s=30)
    assert back.answers == shown.answers
    assert session.exec(select(Vote).where(Vote.ranking_id == ranking.id)).all() == []
    session.refresh(ranking)
    assert ranking.status is ComparisonStatus.open and ranking.vote_count == 0
    assert {c.vote_count for c in session.exec(select(Comparison).where(Comparison.ranking_id == ranking.id))} == {0}
    # The pair handed out after the order gave its place back: the ranking is what shows now; redo it.
    again = rating.next_item(session=session, rater=rater, kinds=("pair", "ranking"))
    assert isinstance(again, rankings.RankingHandout) and again.answers == shown.answers
    redo = rankings.submit_ranking(session=session, rater=rater, ranking_id=ranking.id, order=[[0], [1], [2], [3]])
    assert redo.created and redo.order == [[0], [1], [2], [3]]


def test_undo_is_refused_after_the_window_and_once_a_run_holds_it(session):
    from rlhf.models import SnapshotVote, TrainingRun

    rater = factories.user(session)
    ranking = factories.ranking(session, ["w", "x", "y"])
    rankings.next_ranking_for_rater(session=session, rater=rater)
    result = rankings.submit_ranking(session=session, rater=rater, ranking_id=ranking.id, order=[[0], [1, 2]])
    votes = [session.get(Vote, v) for v in result.vote_ids]
    for vote in votes:
        vote.created_at = utcnow() - timedelta(seconds=45)
        session.add(vote)
    session.commit()
    with pytest.raises(Conflict, match="within 30 s"):
        rating.undo_ranking(session=session, rater=rater, ranking_id=ranking.id, window_s=30)
    run = TrainingRun(algorithm="dpo")
    session.add(run)
    session.flush()
    session.add(SnapshotVote(run_id=run.id, vote_id=votes[1].id))
    session.commit()
    with pytest.raises(Conflict, match=f"training run {run.id}"):
        rating.undo_ranking(session=session, rater=rater, ranking_id=ranking.id, window_s=60)
    assert len(session.exec(select(Vote).where(Vote.ranking_id == ranking.id)).all()) == 3


def test_places_leases_skips_and_late_orders(session):
    alice, bob, carol = (factories.user(session, n) for n in ("alice", "bob", "carol"))
    ranking = factories.ranking(session, ["w", "x", "y"], target_votes=1)
    assert rankings.rankings_left_for(session=session, rater_id=bob.id) == 1
    assert rankings.next_ranking_for_rater(session=session, rater=alice) is not None
    assert rankings.next_ranking_for_rater(session=session, rater=bob) is None  # alice holds its one place
    assert rankings.rankings_left_for(session=session, rater_id=bob.id) == 0
    assert rankings.rankings_left_for(session=session, rater_id=alice.id) == 1  # her own lease counts
    rating.skip_ranking(session=session, rater=alice, ranking_id=ranking.id)
    session.commit()
    assert rankings.next_ranking_for_rater(session=session, rater=alice) is None  # skipped: not hers for a day
    assert rankings.next_ranking_for_rater(session=session, rater=bob) is not None
    # Alice comes back to it: bob holds the place now, so her late order is refused.
    with pytest.raises(Conflict, match="handed to another rater"):
        rankings.submit_ranking(session=session, rater=alice, ranking_id=ranking.id, order=[[0], [1], [2]])
    assert rating.release_leases(session=session, rater_id=bob.id) == 1
    session.commit()
    # Bob left: the place is free again, so a late order is stored.
    assert rankings.submit_ranking(session=session, rater=alice, ranking_id=ranking.id, order=[[0], [1], [2]]).created
    assert rankings.next_ranking_for_rater(session=session, rater=carol) is None  # closed
    with pytest.raises(Conflict, match="closed"):
        rankings.submit_ranking(session=session, rater=bob, ranking_id=ranking.id, order=[[0], [1], [2]])
    with pytest.raises(Conflict, match="already ordered"):
        rating.skip_ranking(session=session, rater=alice, ranking_id=ranking.id)


def test_a_ranking_lease_is_longer_and_renewed_in_the_same_order(session):
    rater = factories.user(session)
    ranking = factories.ranking(session, ["a", "b", "c", "d", "e"])
    first = rankings.next_ranking_for_rater(session=session, rater=rater, rng=random.Random(1))
    lease = session.exec(select(RankingLease).where(RankingLease.ranking_id == ranking.id)).one()
    assert rankings.lease_for(5) == timedelta(minutes=15) and rankings.lease_for(2) == timedelta(minutes=5)
    lease.expires_at = utcnow() - timedelta(seconds=1)
    session.add(lease)
    session.commit()
    assert rankings.next_ranking_for_rater(session=session, rater=rater, rng=random.Random(2)).answers == first.answers


def test_rankings_go_before_pairs_of_their_tier_and_after_earlier_tiers(session):
    rater = factories.user(session)
    [pair] = factories.comparisons(session, [("p", "q")])
    ranking = factories.ranking(session, ["w", "x", "y"])
    first = rating.next_item(session=session, rater=rater, kinds=("pair", "ranking"))
    assert isinstance(first, rankings.RankingHandout) and first.ranking_id == ranking.id
    rating.release_leases(session=session, rater_id=rater.id)
    rating.skip_ranking(session=session, rater=rater, ranking_id=ranking.id)
    session.commit()
    # A client that takes pairs only never gets the ranking; a pair of an earlier tier goes first.
    other = factories.ranking(session, ["u", "v", "t"], prompt="another")
    pair.priority = PRIORITY_UNCERTAIN
    session.add(pair)
    session.commit()
    assert rating.next_item(session=session, rater=rater, kinds=("pair",)).comparison_id == pair.id
    rating.release_leases(session=session, rater_id=rater.id)
    session.commit()
    assert rating.next_item(session=session, rater=rater, kinds=("pair", "ranking")).comparison_id == pair.id
    # A client asking for rankings only is handed the other ranking.
    assert rating.next_item(session=session, rater=rater, kinds=("ranking",)).ranking_id == other.id


def test_kinds_are_named_or_refused():
    assert rating.parse_kinds(None) == ("pair",)
    assert rating.parse_kinds("ranking,pair") == ("pair", "ranking")
    with pytest.raises(InvalidInput, match="unknown kind 'triple'"):
        rating.parse_kinds("pair,triple")


def test_removing_simulated_orders_gives_rankings_their_places_back_and_keeps_held_orders_whole(session):
    from rlhf.models import Ranking, SnapshotVote, TrainingRun, VoteKind
    from rlhf.services.vote_admin import remove_votes

    sims = [factories.user(session, f"sim{i}") for i in range(2)]
    ranking = factories.ranking(session, ["w", "x", "y"], target_votes=2)
    orders = []
    for sim in sims:
        rankings.next_ranking_for_rater(session=session, rater=sim)
        orders.append(
            rankings.submit_ranking(
                session=session,
                rater=sim,
                ranking_id=ranking.id,
                order=[[0], [1], [2]],
                kind=VoteKind.simulated,
                source="simulated:shorter",
            )
        )
    session.refresh(ranking)
    assert ranking.status is ComparisonStatus.closed
    run = TrainingRun(algorithm="reward")
    session.add(run)
    session.flush()
    session.add(SnapshotVote(run_id=run.id, vote_id=orders[0].vote_ids[1]))  # one pair of the first order
    session.commit()

    removed = remove_votes(session=session, kind="simulated")
    assert (removed.removed, removed.kept_for_runs) == (3, 3)  # the held order stays whole
    session.expire_all()
    left = session.exec(select(Vote.id).where(Vote.ranking_id == ranking.id)).all()
    assert sorted(left) == sorted(orders[0].vote_ids)
    ranking = session.get(Ranking, ranking.id)
    assert (ranking.status, ranking.vote_count) == (ComparisonStatus.open, 1)
    assert {c.vote_count for c in session.exec(select(Comparison).where(Comparison.ranking_id == ranking.id))} == {1}
