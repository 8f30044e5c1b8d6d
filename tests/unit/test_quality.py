"""Agreement, Krippendorff's alpha, gold accuracy and the training rows, against cases worked by hand."""

from __future__ import annotations

import random

import pytest

from rlhf.models import Algorithm
from rlhf.services import gold
from rlhf.services.comparisons import next_for_rater
from rlhf.services.dataset import preference_rows, snapshot_rows, take_snapshot
from rlhf.services.quality import krippendorff_alpha, measure
from rlhf.services.runs import create_run
from rlhf.services.votes import record_vote
from tests import factories


def _votes(session, comps, raters, table):
    """table: one string per comparison, one letter per rater (a, b, t = tie, x = both bad, . = no vote)."""
    names = {"a": "a", "b": "b", "t": "tie", "x": "both_bad"}
    for comp, row in zip(comps, table):
        for rater, letter in zip(raters, row):
            if letter != ".":
                record_vote(session=session, rater=rater, comparison_id=comp.id, choice=names[letter], as_shown=False)


def test_alpha_matches_the_coincidence_matrix_worked_by_hand():
    # Units (a,a) (a,a) (b,b) (a,b): o_aa=4, o_bb=2, o_ab=o_ba=1; n_a=5, n_b=3, n=8.
    # D_o = 2/8, D_e = 2*5*3/(8*7) = 30/56, alpha = 1 - (2/8)/(30/56) = 8/15.
    assert krippendorff_alpha([["a", "a"], ["a", "a"], ["b", "b"], ["a", "b"]]) == pytest.approx(8 / 15)
    # Three values in a unit weigh 1/(m-1): (a,a,b) (b,b) (tie,a) gives n_a=3, n_b=3, n_tie=1, n=7,
    # D_o = 4/7, D_e = (49-9-9-1)/42 = 5/7, alpha = 1 - 4/5 = 0.2.
    assert krippendorff_alpha([["a", "a", "b"], ["b", "b"], ["tie", "a"], ["a"]]) == pytest.approx(0.2)
    assert krippendorff_alpha([["a", "a"], ["a"]]) is None  # one category: no disagreement to expect
    assert krippendorff_alpha([["a"], ["b"]]) is None  # nothing pairable


def test_pairwise_agreement_per_rater_and_overall(session):
    r1, r2, r3 = (factories.user(session, n) for n in ("r1", "r2", "r3"))
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(5)], target_votes=3)
    _votes(session, comps, [r1, r2, r3], ["aa.", "aa.", "bb.", "ab.", "aab"])
    q = measure(session=session)
    # Pairs: c1..c4 one pair each (3 agree), c5 three pairs (r1-r2 agree, r1-r3 and r2-r3 do not): 4/7.
    assert (q.pairs, q.overlap_comparisons) == (7, 5)
    assert q.agreement == pytest.approx(4 / 7)
    by_name = {r.name: r for r in q.raters}
    assert (by_name["r1"].pairs, by_name["r1"].agreeing_pairs) == (6, 4)
    assert (by_name["r3"].pairs, by_name["r3"].agreeing_pairs) == (2, 0)
    assert q.krippendorff_alpha == pytest.approx(
        krippendorff_alpha([["a", "a"], ["a", "a"], ["b", "b"], ["a", "b"], ["a", "a", "b"]])
    )
    assert q.vote_counts == {2: 4, 3: 1}


def test_overlap_beyond_the_number_of_users_is_reported_unreachable(session):
    factories.user(session, "only")
    factories.comparisons(session, [("x", "y"), ("p", "q")], target_votes=5)
    factories.comparisons(session, [("m", "n")], target_votes=1, checkpoint_path="org/other")
    assert measure(session=session).unreachable == 2


def test_gold_accuracy_and_the_flag_threshold(session):
    good, bad = factories.user(session, "good"), factories.user(session, "bad")
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(4)])
    for c in comps:
        gold.mark_gold(session=session, comparison_id=c.id, answer="a")
    session.commit()
    _votes(session, comps, [good, bad], ["ab", "ab", "aa", "ab"])
    q = measure(session=session, gold_min_accuracy=0.5, gold_min_answered=4)
    by_name = {r.name: r for r in q.raters}
    assert by_name["good"].gold_accuracy == 1.0 and not by_name["good"].flagged
    assert by_name["bad"].gold_accuracy == 0.25 and by_name["bad"].flagged
    # Too few answers yet: nobody is flagged on thin evidence.
    assert measure(session=session, gold_min_accuracy=0.5, gold_min_answered=5).flagged == []
    assert q.agreement is None  # gold pairs measure raters against the answer, not against each other


def test_gold_is_mixed_in_at_the_rate_and_never_keeps_a_rater_busy_alone(session):
    rater = factories.user(session)
    regular = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(40)])
    golds = factories.comparisons(session, [(f"g{i}", f"h{i}") for i in range(40)], checkpoint_path="org/gold")
    for c in golds:
        gold.mark_gold(session=session, comparison_id=c.id, answer="a")
    session.commit()
    gold_ids, rng, handed = {c.id for c in golds}, random.Random(7), []
    while (h := next_for_rater(session=session, rater=rater, rng=rng, gold_rate=0.25)) is not None:
        handed.append(h.comparison_id)
        record_vote(session=session, rater=rater, comparison_id=h.comparison_id, choice="a")
    n_gold = sum(c in gold_ids for c in handed)
    assert len(handed) - n_gold == len(regular)  # every regular pair, then nothing: gold alone is not work
    assert 0.1 < n_gold / len(handed) < 0.4  # about a quarter (binomial, seeded)
    assert len(handed) == len(set(handed))


def test_majority_rows_carry_agreement_and_level_splits_give_no_row(session):
    raters = [factories.user(session, f"r{i}") for i in range(3)]
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(5)], target_votes=3)
    _votes(session, comps, raters, ["aab", "ab.", "ttb", "xxa", "b.."])
    rows = {r["comparison_id"]: r for r in preference_rows(session=session)}
    ids = [c.id for c in comps]
    assert set(rows) == {ids[0], ids[4]}  # level a/b split: no label; tie and both-bad majorities: no pair
    assert rows[ids[0]]["chosen"][0]["content"] == "x0" and rows[ids[0]]["agreement"] == pytest.approx(0.6667)
    assert rows[ids[4]]["chosen"][0]["content"] == "y4" and rows[ids[4]]["votes"] == 1
    kept = {r["comparison_id"]: r for r in preference_rows(session=session, ties="keep")}
    assert kept[ids[2]]["tie"] is True and kept[ids[0]]["tie"] is False
    per_vote = preference_rows(session=session, aggregate="none")
    # One row per a/b vote, whatever the majority: aab -> 3, ab -> 2, ttb -> 1, xxa -> 1, b -> 1.
    assert len(per_vote) == 8


def test_each_pair_carries_the_probability_its_votes_give_its_label(session):
    raters = [factories.user(session, f"r{i}") for i in range(3)]
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(5)], target_votes=3, serve=True)
    _votes(session, comps, raters, ["aab", "aaa", "bba", "b..", "aat"])
    snap = take_snapshot(session=session)
    rows = {r["comparison_id"]: r for r in snapshot_rows(session=session, snapshot=snap)}
    ids = [c.id for c in comps]
    # Vote split: 2 of 3, unanimous, 2 of 3 the other way; a tie counts half each way.
    assert rows[ids[0]]["label_p"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows[ids[1]]["label_p"] == 1.0
    assert rows[ids[2]]["label_p"] == pytest.approx(2 / 3, abs=1e-4) and rows[ids[2]]["chosen"][0]["content"] == "y2"
    assert rows[ids[4]]["label_p"] == pytest.approx(2.5 / 3, abs=1e-4)
    # A single vote: its rater's reliability. r0 agreed on 5 of their 8 overlapping vote pairs,
    # which two raters of accuracy q do when q² + (1-q)² = 5/8: q = (1 + √(1/4)) / 2 = 0.75.
    assert rows[ids[3]]["votes"] == 1 and rows[ids[3]]["label_p"] == 0.75
    # The doubt reaches training per pair, so no global smoothing is derived from it any more.
    assert snap.label_noise > 0
    assert "label_smoothing" not in create_run(session=session, algorithm=Algorithm.dpo).params


def test_a_single_vote_is_as_sure_as_its_rater_is_on_gold(session):
    good, poor = factories.user(session, "good"), factories.user(session, "poor")
    golds = factories.comparisons(session, [(f"g{i}", f"h{i}") for i in range(10)])
    for i, c in enumerate(golds):
        gold.mark_gold(session=session, comparison_id=c.id, answer="a")
        record_vote(session=session, rater=good, comparison_id=c.id, choice="a" if i < 9 else "b", as_shown=False)
        record_vote(session=session, rater=poor, comparison_id=c.id, choice="a" if i < 7 else "b", as_shown=False)
    (mine, theirs) = factories.comparisons(session, [("x", "y"), ("u", "v")], checkpoint_path="org/b", serve=True)
    record_vote(session=session, rater=good, comparison_id=mine.id, choice="a", as_shown=False)
    record_vote(session=session, rater=poor, comparison_id=theirs.id, choice="b", as_shown=False)
    snap = take_snapshot(session=session, exclude_flagged=False)
    assert snap.rater_reliability == {good.id: 0.9, poor.id: 0.7}
    rows = {r["comparison_id"]: r for r in snapshot_rows(session=session, snapshot=snap)}
    assert rows[mine.id]["label_p"] == 0.9 and rows[theirs.id]["label_p"] == 0.7
    # Frozen with the snapshot: later gold answers do not change what the run trains on.
    extra = factories.comparisons(session, [("m", "n")], checkpoint_path="org/c")[0]
    gold.mark_gold(session=session, comparison_id=extra.id, answer="a")
    record_vote(session=session, rater=good, comparison_id=extra.id, choice="b", as_shown=False)
    rows = {r["comparison_id"]: r for r in snapshot_rows(session=session, snapshot=snap)}
    assert rows[mine.id]["label_p"] == 0.9


def test_a_single_vote_by_an_unmeasured_rater_is_a_hard_label(session):
    rater = factories.user(session, "new")
    (comp,) = factories.comparisons(session, [("x", "y")], serve=True)
    record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    (row,) = snapshot_rows(session=session, snapshot=take_snapshot(session=session))
    assert row["label_p"] == 1.0
