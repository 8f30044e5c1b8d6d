"""Simulated raters order rankings by their rule, with noise pair by pair, and count the rater time they spend."""

import random

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from rlhf.errors import InvalidInput
from rlhf.models import Comparison, ComparisonStatus, Vote, VoteKind
from rlhf.services import rankings
from rlhf.services import simulate as sim
from rlhf.services.simulate import order_by_rule, parse_score, simulate
from rlhf_cli.main import app as cli
from tests import factories


def _order_in_texts(session, ranking_id):
    """The simulated rater's stored order of the ranking, as groups of answer texts (sets), best first."""
    (rater,) = sim.simulated_raters(session=session, k=1)
    stored = rankings.stored_order(session=session, ranking_id=ranking_id, rater_id=rater.id)
    shown = rankings.handout_of(session=session, ranking_id=ranking_id, rater_id=rater.id).answers
    return [{shown[i] for i in group} for group in stored.order]


def test_the_rule_orders_a_ranking_with_equal_answers_in_one_group(session):
    (pair,) = factories.comparisons(session, [("please, yes", "no")])
    by_word = factories.ranking(session, ["no thanks", "please help", "nope", "yes please do"])
    by_length = factories.ranking(session, ["aa", "aaaa", "a", "bb"], prompt="another question")

    counts = simulate(session=session, rule="contains:please")
    assert counts["votes"] == 1 and counts["a"] == 1  # the pair, voted on as before
    assert counts["rankings"] == 2 and counts["ranking_pairs"] == 12 and counts.judgements == 3
    assert _order_in_texts(session, by_word.id) == [{"please help", "yes please do"}, {"no thanks", "nope"}]
    # Every answer of the second ranking lacks the word: one group, six tied pairs.
    assert _order_in_texts(session, by_length.id) == [{"aa", "aaaa", "a", "bb"}]
    assert counts["ranking_decided"] == 4
    votes = session.exec(select(Vote).where(col(Vote.ranking_id).is_not(None))).all()
    assert len(votes) == 12 and {v.kind for v in votes} == {VoteKind.simulated}
    assert {v.source for v in votes} == {"simulated:contains:please"}
    assert session.get(Comparison, pair.id).status is ComparisonStatus.closed

    again = factories.ranking(session, ["aa", "aaaa", "a", "bb"], prompt="a third question")
    assert simulate(session=session, rule="longer")["rankings"] == 1
    assert _order_in_texts(session, again.id) == [{"aaaa"}, {"aa", "bb"}, {"a"}]
    shorter = parse_score("shorter")
    assert order_by_rule(["aa", "aaaa", "a", "bb"], shorter, 0.0, random.Random(0)) == [[2], [0, 3], [1]]
    assert order_by_rule(["x", "y please"], parse_score("avoids:please"), 0.0, random.Random(0)) == [[0], [1]]


def test_noise_flips_each_pair_the_rule_tells_apart_at_its_rate():
    rng = random.Random(11)
    by_word, by_length = parse_score("contains:please"), parse_score("longer")
    draws = 4000
    # A ranking of two is a pair vote: flipped with probability noise.
    flipped = sum(order_by_rule(["please", "no"], by_word, 0.2, rng) == [[1], [0]] for _ in range(draws))
    assert 0.15 <= flipped / draws <= 0.25
    # Of three answers the rule tells apart, the rule's own order comes back only when none of the
    # three pairs flipped, (1 - 0.2)^3 = 0.512; any flip moves an answer or ties a cycle in one group.
    kept = sum(order_by_rule(["ccc", "a", "bb"], by_length, 0.2, rng) == [[0], [2], [1]] for _ in range(draws))
    assert 0.46 <= kept / draws <= 0.56
    # Pairs the rule cannot tell apart stay tied however noisy the rater.
    assert all(order_by_rule(["a", "b"], by_length, 1.0, rng) == [[0, 1]] for _ in range(50))


def test_noisy_simulated_orders_flip_about_noise_of_rankings_of_two(session):
    made = [factories.ranking(session, ["please", "no"], prompt=f"question {i}") for i in range(120)]
    counts = simulate(session=session, rule="contains:please", noise=0.25, seed=3)
    assert counts["rankings"] == 120 and counts.get("votes", 0) == 0
    flipped = sum(_order_in_texts(session, r.id) == [{"no"}, {"please"}] for r in made)
    assert 10 <= flipped <= 50  # 30 expected


def test_rater_minutes_add_up_as_documented(session):
    # Prompts "question 0" and "question 1": 10 characters each.
    factories.comparisons(session, [("x" * 100, "x" * 70), ("x" * 100, "x" * 10)])
    factories.ranking(session, ["a" * 50, "b" * 40, "c" * 30, "d" * 20], prompt="question")  # 8 characters

    counts = simulate(session=session, rule="longer", strength=True)
    assert counts["strength_2"] == 1 and counts["strength_3"] == 1 and counts["rankings"] == 1
    per_min = sim.READING_CHARS_PER_MIN
    fixed = sim.RATE_UI_NEXT_S + sim.DECIDE_S
    clearly = fixed + 60 * (10 + 170) / per_min + sim.STRENGTH_CLICK_S  # 30 % shorter: "clearly", a click
    much = fixed + 60 * (10 + 110) / per_min  # "much better" rides on the vote's key
    ranking = fixed + 60 * (8 + 140) / per_min + 2 * sim.ORDER_PER_EXTRA_ANSWER_S  # two answers beyond a pair
    assert counts.rater_seconds == pytest.approx(clearly + much + ranking)
    assert counts.rater_minutes == pytest.approx((clearly + much + ranking) / 60)
    assert sim.judgement_seconds(prompt=8, answers=[50, 40, 30, 20]) == pytest.approx(ranking)


def test_a_budget_of_rater_minutes_stops_the_raters(session):
    comps = factories.comparisons(session, [("x" * 100, "x" * 50)] * 10)
    each = sim.judgement_seconds(prompt=10, answers=[100, 50])
    few = simulate(session=session, rule="longer", minutes=3.5 * each / 60)
    assert few["votes"] == 3 and few.rater_minutes == pytest.approx(3 * each / 60)
    fewer = simulate(session=session, rule="longer", minutes=2.5 * each / 60)  # a budget per run
    assert fewer["votes"] == 2 and fewer.rater_minutes == pytest.approx(2 * each / 60)
    rest = simulate(session=session, rule="longer", minutes=10 * each / 60)
    assert rest["votes"] == 5  # the pool ran out first
    assert all(session.get(Comparison, c.id).status is ComparisonStatus.closed for c in comps)
    with pytest.raises(InvalidInput, match="above 0, not 0"):
        simulate(session=session, rule="longer", minutes=0)


def test_the_budget_stops_between_rankings_and_gives_the_next_one_back(session):
    made = [factories.ranking(session, ["please", "no", "maybe"], prompt=f"question {i}") for i in range(3)]
    each = sim.judgement_seconds(prompt=10, answers=[6, 2, 5])
    counts = simulate(session=session, rule="contains:please", minutes=1.5 * each / 60)
    assert counts["rankings"] == 1
    # The ranking the budget stopped at went back: a person is handed it, not the one after.
    person = factories.user(session, "person")
    assert rankings.next_ranking_for_rater(session=session, rater=person).ranking_id == made[1].id


def test_a_limit_counts_pairs_then_rankings(session):
    factories.comparisons(session, [("please", "no")] * 2)
    for i in range(3):
        factories.ranking(session, ["please", "no"], prompt=f"ranked {i}")
    counts = simulate(session=session, rule="contains:please", limit=4)
    assert counts["votes"] == 2 and counts["rankings"] == 2


class TestTheCommand:
    """``rlhf simulate`` in a database of its own: the command opens its own session, which must see the
    test's committed rows."""

    @pytest.fixture
    def db_url(self, fresh_db_url):
        return fresh_db_url

    @pytest.fixture
    def session(self, committed_session):
        return committed_session

    def test_it_reports_rater_minutes_and_stops_at_its_budget(self, session):
        factories.comparisons(session, [("x" * 100, "x" * 50)] * 4)
        factories.ranking(session, ["please", "no"], prompt="ranked")
        each = sim.judgement_seconds(prompt=10, answers=[100, 50])
        out = CliRunner().invoke(cli, ["simulate", "--rule", "longer", "--minutes", str(2.5 * each / 60)])
        assert out.exit_code == 0, out.output
        assert out.output.startswith("recorded 2 votes (a 2); ") and "0.4 simulated rater-minutes" in out.output
        out = CliRunner().invoke(cli, ["simulate", "--rule", "contains:please"])
        assert out.exit_code == 0, out.output
        assert "recorded 2 votes (tie 2) and 1 rankings (1 pairs, 1 decided)" in out.output
