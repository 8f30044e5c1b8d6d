"""One fixed set of votes, machine labels and demonstrations, for the tests that pin bytes.

The export's golden file (tests/data/export_golden.txt) and the snapshots stored by
earlier code (tests/data/stored_snapshots.json) were written from exactly this data on
an empty database, so ids start at 1: build it on ``fresh_db_url`` (committed), never on
a rolled-back session, whose PostgreSQL sequences go on counting between tests.
"""

from __future__ import annotations

from rlhf.models import Choice, ComparisonSource
from rlhf.services.demonstrations import record_demonstration
from rlhf.services.machine_labels import record_machine_labels
from rlhf.services.votes import record_vote
from tests import factories

PAIRS = [
    ("A0 is right", "B0"),
    ('café ☕ "quoted"', "line one\nline two"),
    ("A2", "B2"),
    ("A3", "B3"),
    ("A4", "B4"),
    ("A5", "B5"),
    ("A6", "B6"),
    ("A7", "B7"),
    ("A8", "B8"),
]
# Per comparison: (rater, choice, rationale[, strength]) in the order they are cast.
VOTES = {
    # 2 of 3; the majority's strengths 3 and 1 make 1 (the lower middle), carol's is not the label's
    0: [("alice", "a", "A is correct", 3), ("bob", "a", None, 1), ("carol", "b", "B is shorter", 2)],
    1: [("alice", "b", None, 2), ("bob", "b", "ünïcode reason")],  # unanimous b, one strength said
    2: [("alice", "tie", "same"), ("bob", "tie", None), ("carol", "a", None, 2)],  # a tie majority
    3: [("alice", "both_bad", None)],  # never a row
    4: [("alice", "a", None, 3), ("bob", "b", None)],  # level: no majority row, two per-vote rows
    5: [("carol", "b", None), ("dave", "a", "left out: dave is excluded")],
    7: [("alice", "a", None)],  # a person's vote: the machine label on it is not used with "both"
}
MACHINE = [(6, Choice.b, 0.83), (7, Choice.b, 0.91), (8, Choice.a, 0.6)]  # comparison index, choice, p
DEMOS = [
    ("alice", [{"role": "user", "content": "write a haiku"}], "old pond / a frog jumps in / splash"),
    ("bob", [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}], "4"),
    ("dave", [{"role": "user", "content": "hello"}], "hi ✋"),
]


def build(session) -> dict:
    """Store the fixed data and commit; returns the comparisons and users by name."""
    users = {name: factories.user(session, name) for name in ("alice", "bob", "carol", "dave")}
    comps = factories.comparisons(session, PAIRS, target_votes=3)
    comps[5].source = ComparisonSource.arena
    session.add(comps[5])
    for i, votes in VOTES.items():
        for name, choice, why, *strength in votes:
            record_vote(
                session=session,
                rater=users[name],
                comparison_id=comps[i].id,
                choice=choice,
                rationale=why,
                as_shown=False,
                strength=strength[0] if strength else None,
            )
    record_machine_labels(
        session=session, reward_checkpoint_id=1, labels=[(comps[i].id, choice, p) for i, choice, p in MACHINE]
    )
    for name, messages, text in DEMOS:
        record_demonstration(session=session, rater=users[name], messages=messages, text=text)
    users["dave"].excluded = True
    session.add(users["dave"])
    session.commit()
    return {"comparisons": comps, "users": users}
