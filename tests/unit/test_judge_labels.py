"""Judges' labels in training data: only a judge that earned a label_p makes rows, a person's vote
wins its pair, and where models disagree the label most likely right makes the row."""

from __future__ import annotations

import pytest

from rlhf.models import Choice, Vote, VoteKind
from rlhf.services.dataset import preference_rows, take_snapshot
from rlhf.services.judges import Verdict, record_verdicts, register_judge
from rlhf.services.snapshots import parse_snapshot
from rlhf.settings import reset_settings_cache
from tests import factories


@pytest.fixture
def overlap_two(monkeypatch):
    monkeypatch.setenv("RLHF_JUDGE_MIN_OVERLAP", "4")
    reset_settings_cache()
    yield
    reset_settings_cache()


def _judge(session, name, comparisons, choices):
    judge = register_judge(session=session, name=name, url="http://judge.example:8000", model="m")
    verdicts = [Verdict(c.id, ch, ch, True, "because", 10) for c, ch in zip(comparisons, choices)]
    record_verdicts(session=session, judge=judge, job_id=None, verdicts=verdicts)
    session.flush()
    return judge


def test_a_judge_trains_only_once_it_has_earned_a_label_p_and_people_win_their_pairs(session, overlap_two):
    comps = factories.comparisons(session, [(f"good {i}", f"bad {i}") for i in range(8)])
    alice = factories.user(session)
    # People voted on the first five; the judge on all eight, agreeing with them on four of the five.
    for c, choice in zip(comps[:5], "aaaab"):
        session.add(Vote(comparison_id=c.id, rater_id=alice.id, choice=Choice(choice)))
    judge = _judge(session, "sharp", comps, "aaaaaaab")
    session.flush()

    people = take_snapshot(session=session, labels="human")
    assert (people.rows, people.judge_rows, people.judge_label_p) == (5, 0, {})
    snap = take_snapshot(session=session, labels="human,judge")
    # Agreement 4/5 on 5 overlap pairs (>= 4): the judge earned 0.8; its three unvoted pairs make rows.
    assert snap.judge_label_p == {judge.user_id: pytest.approx(0.8)}
    assert (snap.rows, snap.judge_rows, snap.machine_rows) == (8, 3, 0)
    assert parse_snapshot(snap.for_storage()).judge_label_p == snap.judge_label_p  # frozen as stored
    rows = {r["comparison_id"]: r for r in preference_rows(session=session, labels="human,judge")}
    assert rows[comps[4].id]["chosen"][0]["content"] == "bad 4" and "label_source" not in rows[comps[4].id]
    judged = rows[comps[7].id]
    assert (judged["label_source"], judged["machine"], judged["label_p"]) == ("judge", f"judge:{judge.id}", 0.8)
    assert judged["chosen"][0]["content"] == "bad 7"


def test_below_the_overlap_a_judge_makes_no_rows(session, overlap_two):
    comps = factories.comparisons(session, [(f"good {i}", f"bad {i}") for i in range(6)])
    alice = factories.user(session)
    for c in comps[:3]:  # three pairs both voted on: one short of four
        session.add(Vote(comparison_id=c.id, rater_id=alice.id, choice=Choice.a))
    _judge(session, "new", comps, "aaaaaa")
    snap = take_snapshot(session=session, labels="all")
    assert (snap.rows, snap.judge_rows, snap.judge_label_p) == (3, 0, {})
    assert snap.model_dump(mode="json")["labels"] == "all"


def test_where_models_disagree_the_label_most_likely_right_makes_the_row(session, overlap_two):
    comps = factories.comparisons(session, [(f"good {i}", f"bad {i}") for i in range(7)])
    alice = factories.user(session)
    for c in comps[:5]:
        session.add(Vote(comparison_id=c.id, rater_id=alice.id, choice=Choice.a))
    judge = _judge(session, "sure", comps, "aaaaaab")  # agrees 5/5 with people: label_p 0.99
    machine = factories.user(session, name="rm")
    unsure, sure = 0.7, 0.995
    session.add(
        Vote(
            comparison_id=comps[6].id,
            rater_id=machine.id,
            choice=Choice.a,
            kind=VoteKind.machine,
            source="machine:1",
            label_p=unsure,
        )
    )
    session.flush()
    row = next(r for r in preference_rows(session=session, labels="all") if r["comparison_id"] == comps[6].id)
    assert (row["label_source"], row["chosen"][0]["content"]) == ("judge", "bad 6")  # 0.99 over 0.7
    session.exec(
        Vote.__table__.update().where(Vote.kind == VoteKind.machine).values(label_p=sure)  # type: ignore[attr-defined]
    )
    row = next(r for r in preference_rows(session=session, labels="all") if r["comparison_id"] == comps[6].id)
    assert (row["label_source"], row["chosen"][0]["content"]) == ("machine", "good 6")
    assert judge.user_id not in {r.get("rater_id") for r in preference_rows(session=session, labels="human")}
