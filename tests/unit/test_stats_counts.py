"""The counts the console, ``rlhf stats`` and ``GET /api/stats`` show: they match the votes of every
kind, and the console's shared copy is never older than its bound, however many tabs read it."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter

import pytest
from sqlmodel import select

from rlhf.models import Choice, Comparison, ComparisonStatus, User, Vote, VoteKind
from rlhf.services.machine_labels import machine_rater
from rlhf.services.stats import SharedCounts, overall_stats
from rlhf.services.votes import record_vote
from tests import factories


def _cast(session, rater: User, comparison: Comparison, choice: Choice, kind: VoteKind) -> None:
    session.add(
        Vote(comparison_id=comparison.id, rater_id=rater.id, choice=choice, kind=kind, source=kind.value, label_p=0.8)
    )
    session.flush()


def test_counts_match_the_votes_of_every_kind(session):
    ann, bob = factories.user(session, "ann"), factories.user(session, "bob")
    sim = factories.user(session, "sim-1")
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(4)], target_votes=2)
    record_vote(session=session, rater=ann, comparison_id=comps[0].id, choice="a", as_shown=False)
    record_vote(session=session, rater=bob, comparison_id=comps[0].id, choice="tie", as_shown=False)
    record_vote(session=session, rater=ann, comparison_id=comps[1].id, choice="both_bad", as_shown=False)
    _cast(session, sim, comps[1], Choice.b, VoteKind.simulated)
    _cast(session, sim, comps[2], Choice.b, VoteKind.simulated)
    machine = machine_rater(session=session)
    for comp in comps:
        _cast(session, machine, comp, Choice.a, VoteKind.machine)
    _cast(session, factories.user(session, "judge"), comps[3], Choice.a, VoteKind.judge)
    session.expire_all()

    counts = overall_stats(session=session)

    # What the votes themselves say, row by row.
    votes = session.exec(select(Vote)).all()
    people = [v for v in votes if v.kind in (VoteKind.human, VoteKind.simulated)]
    names = {u.id: u.name for u in session.exec(select(User))}
    assert counts["votes"] == len(people) == 5
    assert counts["votes_by_choice"] == dict(Counter(v.choice.value for v in people))
    assert counts["votes_by_choice"] == {"a": 1, "tie": 1, "both_bad": 1, "b": 2}
    assert counts["votes_by_kind"] == {"human": 3, "simulated": 2}
    assert counts["machine_labels"] == 4
    assert counts["votes_by_rater"] == {"ann": 2, "bob": 1, "sim-1": 2}
    assert counts["votes_by_rater"] == dict(Counter(names[v.rater_id] for v in people))
    pairs = session.exec(select(Comparison)).all()
    assert counts["comparisons"] == dict(Counter(c.status.value for c in pairs))
    assert counts["comparisons"][ComparisonStatus.closed.value] == 1  # the one two people answered
    assert counts["comparisons_by_source"] == dict(Counter(c.source.value for c in pairs))
    assert counts["prompts"] == 4 and counts["responses"] == 8


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _shared(session, clock: _Clock, max_age_s: float = 5.0) -> tuple[SharedCounts, list[int]]:
    opened: list[int] = []

    def open_session():
        opened.append(1)
        return contextlib.nullcontext(session)

    return SharedCounts(open_session, max_age_s=max_age_s, clock=clock), opened


def test_shared_counts_are_never_older_than_their_bound(session):
    rater = factories.user(session, "ann")
    comps = factories.comparisons(session, [("x0", "y0"), ("x1", "y1")], target_votes=1)
    clock = _Clock()
    shared, opened = _shared(session, clock, max_age_s=5.0)
    assert shared.get()["votes"] == 0

    record_vote(session=session, rater=rater, comparison_id=comps[0].id, choice="a", as_shown=False)
    clock.now += 4.9
    assert shared.get()["votes"] == 0, "within the bound the copy is served, not recounted"
    clock.now += 0.1
    assert shared.get()["votes"] == 1, "at the bound it is counted again"
    assert len(opened) == 2

    # A change this process made is shown at once when it asks for it.
    record_vote(session=session, rater=rater, comparison_id=comps[1].id, choice="b", as_shown=False)
    shared.invalidate()
    assert shared.get()["votes"] == 2 and len(opened) == 3

    # A longer bound keeps the copy longer.
    longer, _ = _shared(session, clock, max_age_s=60.0)
    first = longer.get()
    factories.comparisons(session, [("x2", "y2")], checkpoint_path="org/other-model")
    clock.now += 30
    assert longer.get() == first and shared.get()["comparisons"] != first["comparisons"]


def test_every_tab_reads_one_count(session):
    clock = _Clock()
    shared, opened = _shared(session, clock)
    start = threading.Barrier(8)
    seen: list[dict] = []

    def tab() -> None:
        start.wait()
        seen.append(shared.get())

    tabs = [threading.Thread(target=tab) for _ in range(8)]
    for t in tabs:
        t.start()
    for t in tabs:
        t.join()
    assert len(seen) == 8 and len(opened) == 1
    assert all(s is seen[0] for s in seen)


def test_a_bound_of_zero_is_refused(session):
    with pytest.raises(ValueError, match="max_age_s"):
        SharedCounts(lambda: contextlib.nullcontext(session), max_age_s=0)
