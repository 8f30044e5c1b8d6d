import math

import numpy as np
import pytest

from rlhf.models import Response
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.comparisons import open_comparison
from rlhf.services.leaderboard import fit_strengths, leaderboard
from rlhf.services.prompts import PromptRecord, import_records
from rlhf.services.votes import record_vote
from tests import factories


def _duel(session, outcomes, names=("A", "B")):
    """One comparison per outcome between a response of checkpoint A (stored as a) and one of B."""
    a, b = (register_checkpoint(session=session, path=f"org/{n}", name=n, serve=True) for n in names)
    rater = factories.user(session, "judge")
    (pid,) = import_records(session=session, records=[PromptRecord(messages=[{"role": "user", "content": "q"}])]).ids
    for n, choice in enumerate(outcomes):
        ra = Response(prompt_id=pid, checkpoint_id=a.id, text=f"a{n}")
        rb = Response(prompt_id=pid, checkpoint_id=b.id, text=f"b{n}")
        session.add_all([ra, rb])
        session.flush()
        comp = open_comparison(session=session, prompt_id=pid, response_a_id=ra.id, response_b_id=rb.id)
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice=choice, as_shown=False)
    return a, b


def test_eight_wins_of_ten_rank_first_with_an_interval_clear_of_the_loser(session):
    a, b = _duel(session, ["a"] * 8 + ["b"] * 2)
    board = leaderboard(session=session, bootstrap=300)
    first, second = board.standings
    assert (first.checkpoint_id, second.checkpoint_id) == (a.id, b.id)
    assert (first.rank, first.votes, first.wins, first.losses) == (1, 10, 8, 2)
    # 8:2 is 4:1 odds, 400*log10(4) = 241 points without the prior; the prior shrinks it a little.
    assert 150 < first.rating - second.rating < 241
    assert first.ci_low <= first.rating <= first.ci_high
    assert not first.ci_low <= second.rating <= first.ci_high
    assert board.votes == 10


def test_symmetric_results_give_equal_ratings(session):
    _duel(session, ["a", "b"] * 5 + ["tie"] * 2)
    first, second = leaderboard(session=session, bootstrap=50).standings
    assert first.rating == second.rating == 1000.0
    assert first.ties == second.ties == 2


def test_votes_within_one_checkpoint_do_not_rate_it(session):
    (comp,) = factories.comparisons(session, [("x", "y")])
    record_vote(session=session, rater=factories.user(session), comparison_id=comp.id, choice="a")
    (only,) = leaderboard(session=session).standings
    assert only.rating is None and only.rank is None and only.votes == 0


def test_many_votes_recover_the_true_odds():
    wins = np.array([[0.0, 800.0], [200.0, 0.0]])
    p = fit_strengths(wins)
    assert 400 * math.log10(p[0] / p[1]) == pytest.approx(400 * math.log10(4), abs=1.0)


def test_gold_pairs_do_not_count_towards_the_ranking(session):
    from sqlmodel import select

    from rlhf.models import Comparison
    from rlhf.services.gold import mark_gold

    _duel(session, ["a", "b"])
    first = session.exec(select(Comparison).order_by(Comparison.id)).first()
    mark_gold(session=session, comparison_id=first.id, answer="a")
    session.commit()
    assert leaderboard(session=session, bootstrap=0).votes == 1


# --- rankings: one judgement, resampled whole ---------------------------------------------------


def _ranked_duel(session, a_first: int, b_first: int):
    """Rankings of two answers of A and two of B, each ordered by one rater with one checkpoint's
    answers both on top: every ranking gives four A-B votes that all go the same way."""
    import random

    from rlhf.services import rankings

    rater = factories.user(session, "ranker")
    for n in range(a_first + b_first):
        texts = [f"a{n}", f"aa{n}", f"b{n}", f"bb{n}"]
        made = factories.ranking(session, texts, checkpoint_names=["A", "A", "B", "B"], prompt=f"rank {n}")
        shown = rankings.next_ranking_for_rater(session=session, rater=rater, rng=random.Random(n))
        best = texts if n < a_first else texts[2:] + texts[:2]
        order = [[shown.answers.index(t)] for t in best]
        rankings.submit_ranking(session=session, rater=rater, ranking_id=made.id, order=order)


def _width(board, name):
    (s,) = [s for s in board.standings if s.name == name]
    return s.ci_high - s.ci_low


def test_a_ranking_s_votes_are_resampled_together_so_its_interval_is_wider(session):
    import sqlalchemy as sa

    from rlhf.models import Vote

    _ranked_duel(session, a_first=6, b_first=4)
    clustered = leaderboard(session=session, bootstrap=400)
    assert clustered.votes == 40  # four cross-checkpoint votes per ranking; A-A and B-B pairs say nothing
    (a,) = [s for s in clustered.standings if s.name == "A"]
    assert (a.wins, a.losses, a.rank) == (24, 16, 1)
    # The same votes taken as forty independent pairs: the same ratings, a narrower interval.
    session.execute(sa.update(Vote).values(ranking_id=None))
    per_vote = leaderboard(session=session, bootstrap=400)
    assert [(s.name, s.rating) for s in per_vote.standings] == [(s.name, s.rating) for s in clustered.standings]
    # Ten judgements, not forty: about twice as wide (√4), well clear of the per-vote one.
    assert _width(clustered, "A") > 1.5 * _width(per_vote, "A")


def test_a_resampled_cluster_brings_all_its_votes():
    from rlhf.services.leaderboard import resampled_counts

    # Kind 0: a single vote of category 0 (5 of them); kind 1: a ranking with 2 votes of category 1
    # and 1 of category 2 (3 of them).
    clusters = np.array([5.0, 3.0])
    members = (np.array([0, 1, 1]), np.array([0, 1, 2]), np.array([1, 2, 1]))
    counts = resampled_counts(np.random.default_rng(0), clusters, members, 3, 500)
    assert counts.shape == (500, 3)
    assert np.all(counts.sum(axis=1) == counts[:, 0] + 3 * counts[:, 2])  # whole rankings only
    assert np.all(counts[:, 1] == 2 * counts[:, 2])
    assert np.all(counts[:, 0] + counts[:, 2] == 8)  # as many clusters as there are
    assert counts[:, 2].min() < 3 < counts[:, 2].max()  # and they do vary


def test_without_rankings_the_bootstrap_resamples_single_votes_as_it_always_has():
    from rlhf.services.leaderboard import _clusters, resampled_counts

    keys = [(1, 2, "win"), (2, 1, "win"), (1, 2, "tie"), (3, 1, "win")]
    counts = np.array([7.0, 3.0, 2.0, 5.0])
    clusters, members = _clusters(keys, counts, {})
    got = resampled_counts(np.random.default_rng(4), clusters, members, len(keys), 300)
    before = np.random.default_rng(4).multinomial(17, counts / 17, size=300).astype(float)
    assert np.array_equal(got, before)
