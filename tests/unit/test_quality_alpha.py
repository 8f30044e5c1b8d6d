"""Alpha and agreement from grouped counts give exactly the figures the vote-by-vote path gives."""

from __future__ import annotations

import random
from itertools import combinations

import krippendorff
import numpy as np
import pytest
import sqlalchemy as sa
from sqlmodel import col

from rlhf.models import Comparison
from rlhf.services import dataset, gold, quality, soft_labels
from rlhf.services.quality import CATEGORIES, alpha_from_counts, krippendorff_alpha, measure
from rlhf.services.votes import record_vote
from tests import factories


def _alpha_from_reliability_data(units: list[list[str]]) -> float | None:
    """The library's reliability-data path: a raters x units matrix, filled one cell at a time."""
    pairable = [u for u in units if len(u) >= 2]
    if not pairable or len({v for u in pairable for v in u}) < 2:
        return None
    data = np.full((max(len(u) for u in pairable), len(pairable)), np.nan)
    for j, unit in enumerate(pairable):
        for i, value in enumerate(unit):
            data[i, j] = CATEGORIES.index(value)
    return float(
        krippendorff.alpha(
            reliability_data=data, level_of_measurement="nominal", value_domain=list(range(len(CATEGORIES)))
        )
    )


def _same(value: float | None):
    return None if value is None else pytest.approx(value, rel=1e-12, abs=1e-12)


def _random_units(rng: random.Random) -> list[list[str]]:
    # Skewed answer weights, so ties and 'both bad' are rare in some draws and common in others.
    weights = [rng.random() for _ in CATEGORIES]
    return [rng.choices(CATEGORIES, weights, k=rng.randint(1, 5)) for _ in range(rng.randint(1, 300))]


@pytest.mark.parametrize("seed", range(12))
def test_counts_give_the_same_alpha_as_reliability_data(seed):
    units = _random_units(random.Random(seed))
    expected = _alpha_from_reliability_data(units)
    # The same sums in another order: equal to the last few bits of a float.
    assert krippendorff_alpha(units) == _same(expected)
    counts = np.array([[u.count(c) for c in CATEGORIES] for u in units])
    assert alpha_from_counts(counts) == _same(expected)


def test_units_with_one_value_or_none_change_nothing():
    units = [["a", "a"], ["a", "b", "tie"], ["b", "b", "both_bad", "b"], ["tie", "tie"]]
    counts = np.array([[u.count(c) for c in CATEGORIES] for u in units])
    padded = np.vstack([counts, [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]])
    assert alpha_from_counts(padded) == alpha_from_counts(counts) == _same(_alpha_from_reliability_data(units))
    assert alpha_from_counts(np.array([[1, 0, 0, 0], [0, 1, 0, 0]])) is None  # nothing pairable
    assert alpha_from_counts(np.array([[0, 3, 0, 0], [0, 2, 0, 0]])) is None  # one category only
    assert alpha_from_counts(np.zeros((0, len(CATEGORIES)), dtype=np.int64)) is None


def test_measure_counts_every_pair_of_votes_and_the_gold_answers(session):
    rng = random.Random(3)
    raters = [factories.user(session, f"r{i}") for i in range(6)]
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(30)], target_votes=5)
    golds = factories.comparisons(session, [(f"g{i}", f"h{i}") for i in range(6)], checkpoint_path="org/gold")
    for c in golds:
        gold.mark_gold(session=session, comparison_id=c.id, answer=rng.choice(["a", "b"]))
    session.commit()
    # Votes interleaved across comparisons, so a unit's first vote decides its place.
    ballots = [(c, r) for c in comps + golds for r in rng.sample(raters, rng.randint(1, 5))]
    rng.shuffle(ballots)
    units: dict[int, list[tuple[str, str]]] = {}
    for comp, rater in ballots:
        choice = rng.choice(CATEGORIES)
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice=choice, as_shown=False)
        if not comp.is_gold:
            units.setdefault(comp.id, []).append((rater.name, choice))

    q = measure(session=session)
    pairs, agreeing = {r.name: 0 for r in raters}, {r.name: 0 for r in raters}
    for votes in units.values():
        for (n1, c1), (n2, c2) in combinations(votes, 2):
            for name in (n1, n2):
                pairs[name] += 1
                agreeing[name] += c1 == c2
    by_name = {r.name: r for r in q.raters}
    assert {n: r.pairs for n, r in by_name.items()} == pairs
    assert {n: r.agreeing_pairs for n, r in by_name.items()} == agreeing
    assert q.pairs == sum(pairs.values()) // 2
    assert q.overlap_comparisons == sum(len(v) >= 2 for v in units.values())
    assert q.krippendorff_alpha == _same(_alpha_from_reliability_data([[c for _, c in v] for v in units.values()]))
    assert sum(r.votes for r in q.raters) == len(ballots)
    assert sum(r.gold_answered for r in q.raters) == sum(c.is_gold for c, _ in ballots)


def test_an_export_or_a_snapshot_measures_the_raters_once(session, monkeypatch, tmp_path):
    raters = [factories.user(session, f"r{i}") for i in range(3)]
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(4)], target_votes=3)
    for comp in comps:
        for rater in raters:
            record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    calls = []

    def counted(**kwargs):
        calls.append(1)
        return measure(**kwargs)

    for module in (dataset, quality, soft_labels):
        monkeypatch.setattr(module, "measure", counted)
    dataset.take_snapshot(session=session)
    dataset.export(session=session, path=tmp_path / "out.jsonl")
    dataset.preference_rows(session=session, exclude_flagged=False)
    assert len(calls) == 3


def test_comparison_ids_past_what_packs_into_one_column_are_read_apart(session):
    """On PostgreSQL the votes travel packed into one integer, which holds comparison ids under
    2**30; past that the columns travel apart, and sparse ids are numbered before counting."""
    raters = [factories.user(session, f"r{i}") for i in range(3)]
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(3)], target_votes=3)
    far = 2**30 + comps[0].id
    session.execute(sa.update(Comparison).where(col(Comparison.id) == comps[0].id).values(id=far))
    session.expire_all()
    ids = [far, comps[1].id, comps[2].id]
    answers = {far: ["a", "a", "b"], comps[1].id: ["b", "b", "b"], comps[2].id: ["a", "tie", "tie"]}
    for cid in ids:
        for rater, choice in zip(raters, answers[cid], strict=True):
            record_vote(session=session, rater=rater, comparison_id=cid, choice=choice, as_shown=False)
    q = measure(session=session)
    assert q.overlap_comparisons == 3 and q.pairs == 9
    assert q.agreement == pytest.approx(5 / 9)
    assert q.krippendorff_alpha == _same(_alpha_from_reliability_data(list(answers.values())))
    assert {r.name: r.agreeing_pairs for r in q.raters} == {"r0": 3, "r1": 4, "r2": 3}
