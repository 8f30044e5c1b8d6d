"""Whose vote it is: a person's (or a simulated rater standing in for one), or a machine label.

A *machine label* is a vote cast by a reward model through a label job
(:mod:`rlhf.services.machine_labels`). It is stored as a vote of the machine rater, with
``source`` ``machine:<reward checkpoint id>`` and its calibrated probability in ``label_p``.
It never counts toward a comparison's vote target (the pair stays open for people), and
agreement, gold accuracy, rater reliability, the leaderboard and the vote statistics
leave it out. Training uses it only when a snapshot asks for it (``labels``).
"""

from __future__ import annotations

from rlhf.models import Vote

MACHINE_SOURCE = "machine:"
LABELS = ("human", "machine", "both")


def machine_source(reward_checkpoint_id: int) -> str:
    return f"{MACHINE_SOURCE}{reward_checkpoint_id}"


def is_machine(source: str | None) -> bool:
    return bool(source) and source.startswith(MACHINE_SOURCE)


def human_vote():
    """SQL condition: the vote is not a machine label."""
    return ~Vote.source.startswith(MACHINE_SOURCE)


def machine_vote():
    """SQL condition: the vote is a machine label."""
    return Vote.source.startswith(MACHINE_SOURCE)
