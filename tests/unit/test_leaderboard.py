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
