import json

import pyarrow.parquet as pq
import pytest
from sqlmodel import select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import Response
from rlhf.services.dataset import export, preference_rows, snapshot_rows, take_snapshot
from rlhf.services.simulate import parse_rule, simulate
from rlhf.services.votes import record_vote
from tests import factories


def _vote_all(session, choices):
    rater = factories.user(session)
    comps = factories.comparisons(session, [(f"A{i}", f"B{i}") for i in range(len(choices))])
    for c, choice in zip(comps, choices):
        record_vote(session=session, rater=rater, comparison_id=c.id, choice=choice, as_shown=False)
    return comps


def test_rows_are_trl_conversational_and_ties_dropped_by_default(session):
    _vote_all(session, ["a", "b", "tie", "both_bad"])
    rows = preference_rows(session=session)
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [("A0", "B0"), ("B1", "A1")]
    assert rows[0]["prompt"] == [{"role": "user", "content": "question 0"}]
    assert rows[0]["chosen"][0]["role"] == "assistant"
    kept = preference_rows(session=session, ties="keep")
    assert [r["tie"] for r in kept] == [False, False, True]  # both-bad is never a preference


def test_export_jsonl_and_parquet(session, tmp_path):
    _vote_all(session, ["a", "b"])
    assert export(session=session, path=tmp_path / "prefs.jsonl") == 2
    lines = [json.loads(x) for x in (tmp_path / "prefs.jsonl").read_text().splitlines()]
    assert {"prompt", "chosen", "rejected"} <= set(lines[0])
    export(session=session, path=tmp_path / "prefs.parquet")
    assert pq.read_table(tmp_path / "prefs.parquet").num_rows == 2
    with pytest.raises(InvalidInput):
        export(session=session, path=tmp_path / "x.jsonl", ties="maybe")


def test_snapshot_freezes_votes_and_detects_tampering(session):
    _vote_all(session, ["a", "b"])
    snap = take_snapshot(session=session)
    assert snap.rows == 2 and len(snap.hash) == 64
    _vote_all_more = factories.comparisons(session, [("late", "vote")], checkpoint_path="org/other")
    rater = factories.user(session, "bob")
    record_vote(session=session, rater=rater, comparison_id=_vote_all_more[0].id, choice="a")
    assert len(snapshot_rows(session=session, snapshot=snap)) == 2  # later votes are not in it
    response = session.exec(select(Response).where(Response.text == "A0")).one()
    response.text = "edited"
    session.add(response)
    session.commit()
    with pytest.raises(Conflict, match="hash mismatch"):
        snapshot_rows(session=session, snapshot=snap)


def test_snapshot_without_usable_votes_says_why(session):
    _vote_all(session, ["tie", "both_bad"])
    with pytest.raises(InvalidInput, match="no usable votes"):
        take_snapshot(session=session)


@pytest.mark.parametrize(
    "rule, a, b, expected",
    [
        ("contains:please", "yes please", "no", "a"),
        ("contains:please", "no", "Please do", "b"),
        ("contains:please", "pleased", "no", "tie"),  # whole words only
        ("avoids:please", "yes please", "no", "b"),
        ("shorter", "abc", "ab", "b"),
        ("longer", "abc", "ab", "a"),
        ("longer", "ab", "cd", "tie"),
    ],
)
def test_simulation_rules(rule, a, b, expected):
    assert parse_rule(rule)(a, b).value == expected


def test_bad_rule_is_refused():
    for rule in ("contains", "contains:", "sometimes", "shorter:3"):
        with pytest.raises(InvalidInput):
            parse_rule(rule)


def test_simulate_votes_with_k_raters_and_noise(session):
    factories.comparisons(session, [("please", "no")] * 20, target_votes=3)
    counts = simulate(session=session, rule="contains:please", raters=3, noise=0.0)
    assert counts == {"a": 60, "votes": 60}
    factories.comparisons(session, [("please", "no")] * 200, checkpoint_path="org/other")
    noisy = simulate(session=session, rule="contains:please", noise=0.25, seed=1)
    assert noisy["votes"] == 200 and 25 <= noisy["b"] <= 75


def test_exports_carry_the_raters_rationales_in_jsonl_and_parquet(session, tmp_path):
    alice, bob, carol = (factories.user(session, name) for name in ("alice", "bob", "carol"))
    (comp,) = factories.comparisons(session, [("A", "B")], target_votes=3)
    for rater, choice, why in ((alice, "a", "A is correct"), (bob, "a", None), (carol, "b", "B is shorter")):
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice=choice, rationale=why, as_shown=False)
    (row,) = preference_rows(session=session)
    assert row["rationales"] == ["A is correct", "B is shorter"]  # all of the comparison's votes, like vote_ids
    per_vote = preference_rows(session=session, aggregate="none")
    assert [r["rationales"] for r in per_vote] == [["A is correct"], [], ["B is shorter"]]
    export(session=session, path=tmp_path / "p.jsonl")
    assert json.loads((tmp_path / "p.jsonl").read_text())["rationales"] == ["A is correct", "B is shorter"]
    export(session=session, path=tmp_path / "p.parquet")
    assert pq.read_table(tmp_path / "p.parquet").to_pylist()[0]["rationales"] == ["A is correct", "B is shorter"]
