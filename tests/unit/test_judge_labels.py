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


def test_a_judge_trains_once_it_has_earned_a_label_p_and_people_win_their_pairs(session, overlap_two):
    comps = factories.comparisons(session, [(f"good {i}", f"bad {i}") for i in range(15)])
    alice = factories.user(session)
    # People voted on the first twelve; the judge on all fifteen, agreeing with them on eleven.
    for c, choice in zip(comps[:12], "a" * 11 + "b"):
        session.add(Vote(comparison_id=c.id, rater_id=alice.id, choice=Choice(choice)))
    judge = _judge(session, "sharp", comps, "a" * 14 + "b")
    session.flush()

    people = take_snapshot(session=session, labels="human")
    assert (people.rows, people.judge_rows, people.judge_label_p) == (12, 0, {})
    snap = take_snapshot(session=session, labels="human,judge")
    # 11 of 12 overlap pairs (>= 4, and shown better than a coin flip): the judge earned 11/12; its
    # three unvoted pairs make rows.
    assert snap.judge_label_p == {judge.user_id: pytest.approx(11 / 12, abs=1e-4)}
    assert (snap.rows, snap.judge_rows, snap.machine_rows) == (15, 3, 0)
    assert parse_snapshot(snap.for_storage()).judge_label_p == snap.judge_label_p  # frozen as stored
    rows = {r["comparison_id"]: r for r in preference_rows(session=session, labels="human,judge")}
    assert rows[comps[11].id]["chosen"][0]["content"] == "bad 11" and "label_source" not in rows[comps[11].id]
    judged = rows[comps[14].id]
    assert (judged["label_source"], judged["machine"]) == ("judge", f"judge:{judge.id}")
    assert judged["label_p"] == pytest.approx(11 / 12, abs=1e-4) and judged["chosen"][0]["content"] == "bad 14"


def test_a_judge_not_yet_shown_better_than_a_coin_flip_makes_no_rows(session, overlap_two):
    comps = factories.comparisons(session, [(f"good {i}", f"bad {i}") for i in range(10)])
    alice = factories.user(session)
    for c in comps[:8]:
        session.add(Vote(comparison_id=c.id, rater_id=alice.id, choice=Choice.a))
    _judge(session, "coin", comps, "abababab" + "aa")  # agrees on 4 of 8: about one half
    snap = take_snapshot(session=session, labels="human,judge")
    assert (snap.rows, snap.judge_rows, snap.judge_label_p) == (8, 0, {})


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
    comps = factories.comparisons(session, [(f"good {i}", f"bad {i}") for i in range(9)])
    alice = factories.user(session)
    for c in comps[:8]:
        session.add(Vote(comparison_id=c.id, rater_id=alice.id, choice=Choice.a))
    judge = _judge(session, "sure", comps, "aaaaaaaab")  # agrees 8/8 with people: label_p 0.99
    machine = factories.user(session, name="rm")
    unsure, sure = 0.7, 0.995
    session.add(
        Vote(
            comparison_id=comps[8].id,
            rater_id=machine.id,
            choice=Choice.a,
            kind=VoteKind.machine,
            source="machine:1",
            label_p=unsure,
        )
    )
    session.flush()
    row = next(r for r in preference_rows(session=session, labels="all") if r["comparison_id"] == comps[8].id)
    assert (row["label_source"], row["chosen"][0]["content"]) == ("judge", "bad 8")  # 0.99 over 0.7
    session.exec(
        Vote.__table__.update().where(Vote.kind == VoteKind.machine).values(label_p=sure)  # type: ignore[attr-defined]
    )
    row = next(r for r in preference_rows(session=session, labels="all") if r["comparison_id"] == comps[8].id)
    assert (row["label_source"], row["chosen"][0]["content"]) == ("machine", "good 8")
    assert judge.user_id not in {r.get("rater_id") for r in preference_rows(session=session, labels="human")}
