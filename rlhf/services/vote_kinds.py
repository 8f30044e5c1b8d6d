"""Whose vote it is (``Vote.kind``): a person's, a simulated rater's, or a label a model made.

Simulated raters stand in for people wherever people's votes count (a comparison's target,
agreement, training by default); they are told apart by their kind, so they can be listed
and removed (:mod:`rlhf.services.vote_admin`), and the leaderboard leaves them out unless asked.

A *machine label* is a vote cast by a reward model through a label job
(:mod:`rlhf.services.machine_labels`): kind ``machine``, ``source``
``machine:<reward checkpoint id>``, its calibrated probability in ``label_p``. It never
counts toward a comparison's vote target (the pair stays open for people), and agreement,
gold accuracy, rater reliability, the leaderboard and the vote statistics leave it out.
Training uses it only when a snapshot asks for it (``labels``).

An AI judge's vote (kind ``judge``, source ``judge:<judge id>``) is left out of the same
figures; its ``label_p`` is what the judge earned against people, frozen in a snapshot.
"""

from __future__ import annotations

from rlhf.models import Vote, VoteKind

MACHINE_SOURCE = "machine:"
# The kinds that count as people's votes.
PEOPLE = (VoteKind.human, VoteKind.simulated)


def machine_source(reward_checkpoint_id: int) -> str:
    return f"{MACHINE_SOURCE}{reward_checkpoint_id}"


def is_machine(vote: Vote) -> bool:
    return vote.kind is VoteKind.machine


def human_vote():
    """SQL condition: a person's vote (or a simulated rater's, standing in for one)."""
    return Vote.kind.in_(PEOPLE)


def machine_vote():
    """SQL condition: the vote is a machine label."""
    return Vote.kind == VoteKind.machine


def judge_vote():
    """SQL condition: the vote is an AI judge's (:mod:`rlhf.services.judges`)."""
    return Vote.kind == VoteKind.judge


def model_label():
    """SQL condition: a label a model made, a reward model's or a judge's."""
    return Vote.kind.in_((VoteKind.machine, VoteKind.judge))
