"""The enumerations the tables store, and the hand-out's priority tiers.

Kept apart from the tables (:mod:`rlhf.models`, which re-exports them) so that either stays a
size one can read.
"""

from __future__ import annotations

import enum


class Role(str, enum.Enum):
    # A reward model casting machine labels: a user of its own kind that can never log in.
    machine = "machine"
    judge = "judge"  # an AI judge's votes: likewise never logs in
    rater = "rater"
    engineer = "engineer"
    admin = "admin"

    @property
    def rank(self) -> int:
        return {"machine": -1, "judge": -1, "rater": 0, "engineer": 1, "admin": 2}[self.value]

    @property
    def never_logs_in(self) -> bool:
        """A model's labels and a judge's verdicts are cast as users that can never log in."""
        return self in (Role.machine, Role.judge)

    def allows(self, needed: "Role") -> bool:
        return self.rank >= needed.rank


class CheckpointKind(str, enum.Enum):
    policy = "policy"
    reward = "reward"


class CheckpointStatus(str, enum.Enum):
    available = "available"  # registered, not shown to raters
    serving = "serving"  # its responses enter new comparisons
    retired = "retired"


class ComparisonStatus(str, enum.Enum):
    open = "open"
    closed = "closed"
    expired = "expired"  # an arena battle left unvoted: never handed out, never voted on


class ComparisonSource(str, enum.Enum):
    """Where a comparison came from; training and the leaderboard can choose by it."""

    queue = "queue"  # a generation job opened it for the Rate tab's queue
    arena = "arena"  # a live battle in the Arena, leased to the rater who started it
    written = "written"  # a rater's own answer preferred over a model answer
    # A pair of a ranking (several answers ordered in one judgement): handed out and voted on only
    # as its ranking, never on its own, so the pair queue's hand-out never meets it.
    ranking = "ranking"


class Choice(str, enum.Enum):
    a = "a"
    b = "b"
    tie = "tie"
    both_bad = "both_bad"

    def swapped(self) -> "Choice":
        """The same judgement with the two sides exchanged (what a rater shown B on the left meant)."""
        return {Choice.a: Choice.b, Choice.b: Choice.a}.get(self, self)


class Strength(enum.IntEnum):
    """How much better the chosen answer is, on an A or B vote (stored as the number)."""

    slightly = 1
    clearly = 2
    much = 3

    @property
    def label(self) -> str:
        return f"{self.name} better"


class VoteKind(str, enum.Enum):
    """Who cast a vote. People's votes and simulated raters' (which stand in for people where
    people's count: targets, agreement, training by default) are apart from labels a model made."""

    human = "human"
    simulated = "simulated"  # a rule voting as a rater (``rlhf simulate``), for demos and tests
    machine = "machine"  # a reward model's calibrated label (a label job); never fills a target
    judge = "judge"  # an AI judge's verdict


# The order pairs go out in: the hand-out sorts open queue pairs on ``Comparison.priority``, lowest first
# (then id). Gaps leave room for new tiers between these.
PRIORITY_UNCERTAIN = 10  # a reward model is least sure of it: a person's vote teaches the most
PRIORITY_REGULAR = 20
PRIORITY_MACHINE_LABELLED = 40  # a reward model has labelled it already: people see it last
PRIORITY_OF_STRATEGY = {"uncertain": PRIORITY_UNCERTAIN}


class JobStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class Algorithm(str, enum.Enum):
    sft = "sft"
    reward = "reward"
    dpo = "dpo"
    ppo = "ppo"
    rloo = "rloo"
    grpo = "grpo"

    @property
    def needs_votes(self) -> bool:
        return self in (Algorithm.reward, Algorithm.dpo)

    @property
    def needs_reward_model(self) -> bool:
        return self in (Algorithm.ppo, Algorithm.rloo, Algorithm.grpo)


class MergeTarget(str, enum.Enum):
    """What a merge job makes of an adapter checkpoint."""

    serving = "serving"  # the cached full-weights copy an inference engine serves (``merged_dir``)
    checkpoint = "checkpoint"  # a new full checkpoint named ``name``, its parent the adapter one
