"""A ranking in training data: its pairs' rows name it, weigh as one judgement, and are held out together."""

from __future__ import annotations

import json
import random
from math import comb

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from rlhf.dataset_rows import PreferenceRow, read_preference_rows
from rlhf.errors import InvalidInput
from rlhf.services import rankings
from rlhf.services.dataset import export, preference_rows, snapshot_rows, take_snapshot
from rlhf.services.votes import record_vote
from rlhf.training.params import build_params, validate_params
from rlhf.training.ranking_weights import needs_weights, pair_weight, ranking_weights
from rlhf.training.reward import split_rows
from tests import factories


def _rank(session, rater, texts, best_first):
    """Open a ranking of ``texts`` and have ``rater`` order it ``best_first`` (texts); returns it."""
    ranking = factories.ranking(session, texts, prompt=f"rank {texts[0]}")
    shown = rankings.next_ranking_for_rater(session=session, rater=rater, rng=random.Random(1))
    assert shown.ranking_id == ranking.id
    order = [[shown.answers.index(t)] for t in best_first]
    rankings.submit_ranking(session=session, rater=rater, ranking_id=ranking.id, order=order)
    return ranking


def _plain_pair(session, rater):
    (comp,) = factories.comparisons(session, [("plain a", "plain b")])
    record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    return comp


# --- rows --------------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregate", ["majority", "none"])
def test_a_ranking_s_pairs_name_their_ranking_and_size_and_other_rows_do_not(session, aggregate):
    rater = factories.user(session)
    plain = _plain_pair(session, rater)
    four = _rank(session, rater, ["w", "x", "y", "z"], ["y", "w", "z", "x"])
    three = _rank(session, rater, ["p", "q", "r"], ["r", "q", "p"])
    rows = preference_rows(session=session, aggregate=aggregate)
    assert len(rows) == 1 + 6 + 3
    by_ranking: dict = {}
    for row in rows:
        if row["comparison_id"] == plain.id:
            assert "ranking_id" not in row and "ranking_size" not in row  # left out, never null
            continue
        keys = list(row)
        assert keys[keys.index("source") : keys.index("source") + 3] == ["source", "ranking_id", "ranking_size"]
        assert row["source"] == "ranking"
        by_ranking.setdefault(row["ranking_id"], []).append(row)
    assert {k: len(v) for k, v in by_ranking.items()} == {four.id: 6, three.id: 3}
    assert {r["ranking_size"] for r in by_ranking[four.id]} == {4}
    assert {r["ranking_size"] for r in by_ranking[three.id]} == {3}
    # The order's pairs are the rows' labels: y first, x last.
    labels = {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in by_ranking[four.id]}
    assert ("y", "x") in labels and ("w", "z") in labels and ("x", "y") not in labels


def test_exports_and_snapshots_carry_the_ranking_and_still_verify(session, tmp_path):
    rater = factories.user(session)
    _plain_pair(session, rater)
    ranking = _rank(session, rater, ["w", "x", "y"], ["x", "y", "w"])
    assert export(session=session, path=tmp_path / "prefs.jsonl") == 4
    written = read_preference_rows(tmp_path / "prefs.jsonl")  # the trainer's reader takes them
    assert [r.get("ranking_id") for r in written] == [None, ranking.id, ranking.id, ranking.id]
    snap = take_snapshot(session=session)
    assert snapshot_rows(session=session, snapshot=snap) == preference_rows(session=session)


def test_rows_find_their_rankings_with_one_query_per_batch_not_one_per_row(session):
    rater = factories.user(session)
    for n in range(4):
        _rank(session, rater, [f"a{n}", f"b{n}", f"c{n}", f"d{n}"], [f"d{n}", f"c{n}", f"b{n}", f"a{n}"])
    statements: list[str] = []

    def note(conn, cursor, statement, *args):
        statements.append(statement)

    engine = session.get_bind()
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        rows = preference_rows(session=session)
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    assert len(rows) == 24 and all(r["ranking_size"] == 4 for r in rows)
    assert sum("response_ids" in s for s in statements) == 1


def test_a_row_names_both_its_ranking_and_its_size_or_neither():
    row = {
        "prompt": [],
        "chosen": [],
        "rejected": [],
        "comparison_id": 1,
        "source": "ranking",
        "vote_id": 3,
        "rater_id": 1,
        "label_p": 1.0,
        "rationales": [],
        "strength": None,
    }
    assert PreferenceRow.model_validate({**row, "ranking_id": 2, "ranking_size": 4}).model_dump()["ranking_size"] == 4
    for bad in ({"ranking_id": 2}, {"ranking_size": 4}, {"ranking_id": 2, "ranking_size": 1}):
        with pytest.raises(ValidationError):
            PreferenceRow.model_validate({**row, **bad})


# --- weights -----------------------------------------------------------------------------------


def _row(comparison_id, ranking_id=None, size=None):
    row = {"comparison_id": comparison_id}
    if ranking_id is not None:
        row |= {"ranking_id": ranking_id, "ranking_size": size}
    return row


def test_a_ranking_weighs_one_judgement_in_the_reward_model_and_each_answer_one_pair_in_dpo():
    rows = [_row(1)] + [_row(10 + i, 7, 4) for i in range(6)] + [_row(20 + i, 8, 3) for i in range(3)]
    reward = ranking_weights(rows, mode="judgement", algorithm="reward")
    assert reward == pytest.approx([1.0] + [1 / 6] * 6 + [1 / 3] * 3)
    assert sum(reward[1:7]) == pytest.approx(1.0) and sum(reward[7:]) == pytest.approx(1.0)
    dpo = ranking_weights(rows, mode="judgement", algorithm="dpo")
    assert dpo == pytest.approx([1.0] + [1 / 3] * 6 + [1 / 2] * 3)
    assert ranking_weights(rows, mode="pair", algorithm="reward") == [1.0] * 10
    assert ranking_weights(rows, mode="pair", algorithm="dpo") == [1.0] * 10
    # A ranking of two is one pair: it weighs 1 either way, and data without rankings is unweighted.
    assert pair_weight(2, "reward") == pair_weight(2, "dpo") == 1.0
    assert pair_weight(6, "reward") == 1 / comb(6, 2) and pair_weight(6, "dpo") == 1 / 5
    assert not needs_weights(ranking_weights([_row(1), _row(2, 3, 2)], mode="judgement", algorithm="reward"))
    with pytest.raises(InvalidInput, match="both ranking_id and ranking_size"):
        ranking_weights([{"ranking_id": 3}], mode="judgement", algorithm="reward")
    with pytest.raises(InvalidInput, match="not 'lots'"):
        ranking_weights([{"ranking_id": 3, "ranking_size": "lots"}], mode="judgement", algorithm="dpo")


# --- held-out splits ---------------------------------------------------------------------------


def _old_split(rows, eval_fraction, seed):
    """How rows were split before rankings: by comparison."""
    comparisons = sorted({r.get("comparison_id", i) for i, r in enumerate(rows)})
    random.Random(seed).shuffle(comparisons)
    held = set(comparisons[: int(round(len(comparisons) * eval_fraction)) if len(comparisons) > 1 else 0])
    return [r for r in rows if r["comparison_id"] not in held], [r for r in rows if r["comparison_id"] in held]


def test_a_held_out_split_keeps_every_pair_of_a_ranking_on_one_side():
    rows = [_row(i) for i in range(10)]
    for ranking in range(10):
        rows += [_row(100 + 10 * ranking + p, ranking, 4) for p in range(6)]
    random.Random(0).shuffle(rows)
    for seed in range(20):
        train, held = split_rows(rows, 0.3, seed)
        assert sorted(map(json.dumps, train + held)) == sorted(map(json.dumps, rows))
        sides = {}
        for side, part in (("train", train), ("held", held)):
            for r in part:
                if "ranking_id" in r:
                    sides.setdefault(r["ranking_id"], set()).add(side)
        assert all(len(s) == 1 for s in sides.values()), f"seed {seed}: a ranking was split"
        # 0.3 of 20 judgements (10 pairs, 10 rankings) held out: 6 of them, whatever their sizes.
        assert len({r.get("ranking_id", ("c", r["comparison_id"])) for r in held}) == 6


def test_rows_without_rankings_split_exactly_as_before():
    rows = [_row(c) for c in (5, 3, 3, 9, 12, 1, 7, 7, 7, 20)]
    for seed in range(10):
        assert split_rows(rows, 0.25, seed) == _old_split(rows, 0.25, seed)


# --- the parameter -----------------------------------------------------------------------------


def test_ranking_weight_defaults_to_one_judgement_and_takes_pair():
    for algorithm in ("reward", "dpo"):
        assert build_params(algorithm, {})[0].ranking_weight == "judgement"
        assert build_params(algorithm, {"ranking_weight": "pair"})[0].ranking_weight == "pair"


@pytest.mark.parametrize(
    "algorithm,params,match",
    [
        ("reward", {"ranking_weight": "pairs"}, "ranking_weight must be one of judgement, pair, not 'pairs'"),
        ("dpo", {"ranking_weight": "1"}, "ranking_weight must be one of"),
        ("dpo", {"ranking_weight": "pair", "loss_type": "ipo"}, "no 'sigmoid' term"),
        ("sft", {"ranking_weight": "pair"}, "reward model's and DPO's loss only"),
        ("rloo", {"ranking_weight": "judgement"}, "reward model's and DPO's loss only"),
        ("grpo", {"ranking_weight": "judgement"}, "reward model's and DPO's loss only"),
        ("ppo", {"ranking_weight": "pair"}, "reward model's and DPO's loss only"),
    ],
)
def test_ranking_weight_is_refused_where_it_would_do_nothing(algorithm, params, match):
    with pytest.raises(InvalidInput, match=match):
        validate_params(algorithm, params)
