"""Database tables: the one source of truth for the loop.

Queues carry only ids; everything a job needs is read from here and everything it
produces is written back here. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from rlhf.columns import as_utc as as_utc
from rlhf.columns import enum_field as _enum
from rlhf.columns import enum_type as _enum_type
from rlhf.columns import json_field as _json
from rlhf.columns import opt_ts as _opt_ts
from rlhf.columns import stored_id as stored_id
from rlhf.columns import ts as _ts
from rlhf.columns import utcnow as utcnow
from rlhf.kinds import (
    PRIORITY_MACHINE_LABELLED as PRIORITY_MACHINE_LABELLED,
)
from rlhf.kinds import (
    PRIORITY_OF_STRATEGY as PRIORITY_OF_STRATEGY,
)
from rlhf.kinds import (
    PRIORITY_REGULAR as PRIORITY_REGULAR,
)
from rlhf.kinds import (
    PRIORITY_UNCERTAIN as PRIORITY_UNCERTAIN,
)
from rlhf.kinds import (
    Algorithm as Algorithm,
)
from rlhf.kinds import (
    CheckpointKind as CheckpointKind,
)
from rlhf.kinds import (
    CheckpointStatus as CheckpointStatus,
)
from rlhf.kinds import (
    Choice as Choice,
)
from rlhf.kinds import (
    ComparisonSource as ComparisonSource,
)
from rlhf.kinds import (
    ComparisonStatus as ComparisonStatus,
)
from rlhf.kinds import (
    JobStatus as JobStatus,
)
from rlhf.kinds import (
    MergeTarget as MergeTarget,
)
from rlhf.kinds import (  # re-exported: the tables' values are read from here
    Role as Role,
)
from rlhf.kinds import (
    Strength as Strength,
)
from rlhf.kinds import (
    VoteKind as VoteKind,
)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(sa.String(128), unique=True, nullable=False))
    role: Role = _enum(Role, Role.rater)
    password_hash: str
    active: bool = True
    # Set by an engineer: this rater's votes are left out of exports and training.
    excluded: bool = False
    created_at: datetime = _ts()


class Prompt(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # The id the importer gave; re-importing the same file does not duplicate prompts.
    external_id: str | None = Field(default=None, sa_column=Column(sa.String(256), unique=True))
    messages: list[dict[str, Any]] = _json(list)
    tags: list[str] = _json(list)
    # "import" or "arena". Arena conversations stay out of the pool generation jobs, online RL
    # and the held-out split draw from, until an engineer promotes one (``in_pool``).
    source: str = Field(default="import", sa_column=Column(sa.String(16), nullable=False, server_default="import"))
    in_pool: bool = Field(
        default=True, sa_column=Column(sa.Boolean, nullable=False, server_default=sa.true(), index=True)
    )
    created_at: datetime = _ts()


class Checkpoint(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(sa.String(256), unique=True, nullable=False))
    kind: CheckpointKind = _enum(CheckpointKind, CheckpointKind.policy)
    status: CheckpointStatus = _enum(CheckpointStatus, CheckpointStatus.available)
    # A local directory or a Hugging Face hub id.
    path: str
    parent_id: int | None = Field(default=None, foreign_key="checkpoint.id")
    # The run that produced it. No foreign key: runs also point at checkpoints, and a
    # cycle of constraints would make table creation order-dependent.
    run_id: int | None = Field(default=None, index=True)
    metrics: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()
    # An adapter checkpoint (``path`` holds a PEFT adapter, not a model) names the checkpoint it
    # applies to by id, never by path: see rlhf.modeling.adapters. Both None for a full model.
    # No foreign key: an operator may remove a base's row; loading its adapters then names it.
    base_checkpoint_id: int | None = Field(default=None, index=True)
    adapter: str | None = Field(default=None, sa_type=sa.String(32))  # "lora" or "prompt_tuning"


class GenerationJob(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    status: JobStatus = _enum(JobStatus, JobStatus.queued)
    params: dict[str, Any] = _json(dict)
    result: dict[str, Any] = _json(dict)
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _ts()
    started_at: datetime | None = _opt_ts()
    finished_at: datetime | None = _opt_ts()
    heartbeat_at: datetime | None = _opt_ts()


class Response(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id", index=True)
    # None for responses imported with gold comparisons (no model of ours wrote them).
    checkpoint_id: int | None = Field(default=None, foreign_key="checkpoint.id", index=True)
    job_id: int | None = Field(default=None, foreign_key="generationjob.id")
    text: str = Field(sa_type=sa.Text)
    # Sampling parameters (temperature, top_p, max_new_tokens, seed) so a sample can be redone.
    params: dict[str, Any] = _json(dict)
    finished: bool = True  # ended with EOS rather than hitting max_new_tokens
    created_at: datetime = _ts()


class Comparison(SQLModel, table=True):
    # The hand-out scans open queue comparisons in (priority, id) order, gold and regular apart.
    __table_args__ = (sa.Index("ix_comparison_handout", "status", "is_gold", "source", "priority", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id", index=True)
    response_a_id: int = Field(foreign_key="response.id")
    response_b_id: int = Field(foreign_key="response.id")
    status: ComparisonStatus = _enum(ComparisonStatus, ComparisonStatus.open)
    target_votes: int = 1
    # Votes stored so far, kept with the row (updated under its lock) so handing out the
    # next pair reads one row instead of counting the vote table.
    vote_count: int = 0
    strategy: str = "random"  # how it was opened: "random", "uncertain", "gold"
    # |reward(a) - reward(b)| from the reward model that picked it (strategy "uncertain").
    reward_margin: float | None = None
    # Gold: a known answer (in terms of response_a/response_b); every rater may be handed
    # it, it never closes, and its votes measure the rater instead of training the model.
    is_gold: bool = False
    gold_choice: Choice | None = Field(default=None, sa_type=_enum_type(Choice))
    job_id: int | None = Field(default=None, foreign_key="generationjob.id")
    source: ComparisonSource = Field(
        default=ComparisonSource.queue,
        sa_column=Column(_enum_type(ComparisonSource), nullable=False, server_default="queue", index=True),
    )
    # When it goes out (PRIORITY_*, lowest first): set where the pair is opened or labelled.
    priority: int = Field(
        default=PRIORITY_REGULAR, sa_column=Column(sa.Integer, nullable=False, server_default=str(PRIORITY_REGULAR))
    )
    # The ranking this pair is one of (source ``ranking``); None for a pair of its own.
    ranking_id: int | None = Field(default=None, foreign_key="ranking.id", index=True)
    created_at: datetime = _ts()


class Ranking(SQLModel, table=True):
    """K answers to one prompt, ordered by a rater in one judgement.

    Stored as its C(K,2) comparisons (source ``ranking``), so a rater's order becomes ordinary
    votes on them: snapshots, undo, agreement, soft labels and the export read them unchanged.
    This row holds what is handed out: which answers, how many raters should order them, and
    how many have.
    """

    # The hand-out scans open rankings in (priority, id) order.
    __table_args__ = (sa.Index("ix_ranking_handout", "status", "priority", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id", index=True)
    # The distinct answers, in the order they were sampled (identical texts dropped).
    response_ids: list[int] = _json(list)
    status: ComparisonStatus = _enum(ComparisonStatus, ComparisonStatus.open)
    target_votes: int = 1  # raters wanted
    vote_count: int = 0  # raters who ordered it (updated under its lock)
    priority: int = Field(
        default=PRIORITY_REGULAR, sa_column=Column(sa.Integer, nullable=False, server_default=str(PRIORITY_REGULAR))
    )
    job_id: int | None = Field(default=None, foreign_key="generationjob.id")
    created_at: datetime = _ts()


class RankingLease(SQLModel, table=True):
    """A ranking leased to one rater, with the order its answers were shown in.

    As with :class:`Assignment`, the row outlives the lease: it keeps the shown order (the
    indexes a rater's order names) and, after a skip, when they skipped it.
    """

    __tablename__ = "ranking_lease"
    __table_args__ = (
        sa.UniqueConstraint("ranking_id", "rater_id", name="uq_ranking_lease_rater"),
        sa.Index("ix_ranking_lease_rater_live", "rater_id", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ranking_id: int = Field(foreign_key="ranking.id", index=True)
    rater_id: int = Field(foreign_key="user.id")
    shown: list[int] = _json(list)  # response ids, in the order the rater sees them (index 0 first)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    skipped_at: datetime | None = _opt_ts()
    created_at: datetime = _ts()


class Vote(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("comparison_id", "rater_id", name="uq_vote_rater_comparison"),
        # The counts group every vote by these three: read from the index alone (rlhf.services.stats).
        sa.Index("ix_vote_rater_kind_choice", "rater_id", "kind", "choice"),
    )

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", index=True)
    rater_id: int = Field(foreign_key="user.id", index=True)
    # Always in terms of the stored response_a / response_b, whatever order the rater saw.
    choice: Choice = Field(sa_type=_enum_type(Choice))
    rationale: str | None = Field(default=None, sa_type=sa.Text)
    shown_swapped: bool = False
    idempotency_key: str | None = Field(default=None, sa_column=Column(sa.String(128), unique=True))
    kind: VoteKind = Field(
        default=VoteKind.human,
        sa_column=Column(_enum_type(VoteKind), nullable=False, server_default="human", index=True),
    )
    # Its origin in detail: "human", "simulated:<rule>", "machine:<reward checkpoint id>".
    source: str = "human"
    # Machine labels: the calibrated probability that this choice is right. None for people.
    label_p: float | None = None
    # How much better the chosen answer is (A or B only): 1 slightly, 2 clearly, 3 much. None: not said.
    strength: int | None = Field(default=None, sa_type=sa.SmallInteger)
    # Set on the votes a ranking was stored as: one judgement, undone together.
    ranking_id: int | None = Field(default=None, foreign_key="ranking.id", index=True)
    created_at: datetime = _ts()


class Assignment(SQLModel, table=True):
    """A comparison leased to one rater, with the left/right order they are shown.

    The row outlives the lease (it keeps the order the vote was cast in); a vote ends the
    lease at once, so it no longer holds a place that another rater could take.
    """

    __table_args__ = (
        sa.UniqueConstraint("comparison_id", "rater_id", name="uq_assignment_rater_comparison"),
        # "this rater's live lease": a range scan however many pairs they have rated.
        sa.Index("ix_assignment_rater_live", "rater_id", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", index=True)
    rater_id: int = Field(foreign_key="user.id", index=True)
    swapped: bool = False
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)
    created_at: datetime = _ts()


class Demonstration(SQLModel, table=True):
    """The answer a rater wanted: the conversation up to a user turn, and the rater's reply.

    ``messages`` ends with the user turn; the SFT export appends ``text`` as the assistant turn.
    """

    id: int | None = Field(default=None, primary_key=True)
    rater_id: int = Field(foreign_key="user.id", index=True)
    comparison_id: int | None = Field(default=None, foreign_key="comparison.id", index=True)
    messages: list[dict[str, Any]] = _json(list)
    text: str = Field(sa_type=sa.Text)
    created_at: datetime = _ts()


class TrainingRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    algorithm: Algorithm = Field(sa_type=_enum_type(Algorithm), index=True)
    status: JobStatus = _enum(JobStatus, JobStatus.queued)
    base_checkpoint_id: int | None = Field(default=None, foreign_key="checkpoint.id")
    reward_checkpoint_id: int | None = Field(default=None, foreign_key="checkpoint.id")
    output_checkpoint_id: int | None = Field(default=None, foreign_key="checkpoint.id")
    params: dict[str, Any] = _json(dict)
    # Frozen at creation: which votes (and their content hash) this run trains on.
    snapshot: dict[str, Any] = _json(dict)
    snapshot_hash: str | None = Field(default=None, sa_type=sa.String(64))
    progress: dict[str, Any] = _json(dict)
    metrics: dict[str, Any] = _json(dict)
    error: str | None = Field(default=None, sa_type=sa.Text)
    serve_on_success: bool = False
    cancel_requested: bool = False
    worker: str | None = None
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = _ts()
    started_at: datetime | None = _opt_ts()
    finished_at: datetime | None = _opt_ts()
    heartbeat_at: datetime | None = _opt_ts()


class SnapshotVote(SQLModel, table=True):
    """A vote a training run's snapshot froze, one row per (run, vote).

    The run row stores only the snapshot's summary; which votes it holds lives here, so "does a
    run hold this vote?" (undo, bulk removal) is an index lookup, and the key to the vote keeps a
    held vote from being deleted by anything that skips that check.
    """

    __tablename__ = "snapshot_vote"
    run_id: int = Field(foreign_key="trainingrun.id", primary_key=True)
    vote_id: int = Field(foreign_key="vote.id", primary_key=True, index=True)


class LabelJob(SQLModel, table=True):
    """Machine labelling: a reward model labels the open comparisons it is sure about (a worker job)."""

    id: int | None = Field(default=None, primary_key=True)
    status: JobStatus = _enum(JobStatus, JobStatus.queued)
    reward_checkpoint_id: int = Field(foreign_key="checkpoint.id")
    min_confidence: float
    params: dict[str, Any] = _json(dict)
    result: dict[str, Any] = _json(dict)
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = _ts()
    started_at: datetime | None = _opt_ts()
    finished_at: datetime | None = _opt_ts()
    heartbeat_at: datetime | None = _opt_ts()


class MergeJob(SQLModel, table=True):
    """An adapter checkpoint merged into full weights (a worker job: it loads the model)."""

    id: int | None = Field(default=None, primary_key=True)
    status: JobStatus = _enum(JobStatus, JobStatus.queued)
    checkpoint_id: int = Field(foreign_key="checkpoint.id", index=True)
    target: MergeTarget = Field(default=MergeTarget.serving, sa_type=_enum_type(MergeTarget))
    name: str | None = Field(default=None, sa_type=sa.String(256))  # the new checkpoint's, for ``checkpoint``
    output_checkpoint_id: int | None = Field(default=None, foreign_key="checkpoint.id")
    params: dict[str, Any] = _json(dict)
    result: dict[str, Any] = _json(dict)
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = _ts()
    started_at: datetime | None = _opt_ts()
    finished_at: datetime | None = _opt_ts()
    heartbeat_at: datetime | None = _opt_ts()


class RunLog(SQLModel, table=True):
    """One logged training step (losses, reward, KL): the curves the console draws."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="trainingrun.id", index=True)
    step: int
    values: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()


class AppSetting(SQLModel, table=True):
    """Small editable texts (rater guidelines) kept with the data, not in env vars."""

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="", sa_type=sa.Text)
    updated_at: datetime = _ts()


class Skip(SQLModel, table=True):
    """A rater passed on a comparison: it goes back to the pool, and not to them again for a day.

    Kept as rows (not a flag on the lease) so that skips can be counted per rater and pair.
    """

    __table_args__ = (sa.Index("ix_skip_rater_recent", "rater_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", index=True)
    rater_id: int = Field(foreign_key="user.id")
    created_at: datetime = _ts()


class AuthSession(SQLModel, table=True):
    """One login: a browser's session cookie or a bearer token names its row.

    Each request looks its row up by primary key, so logging out (revoking one row) ends
    that cookie or token while the user's other devices and scripts keep theirs. Ids are
    never reused (SQLite's AUTOINCREMENT; PostgreSQL's sequences never are): an old cookie
    must not come back to life as the id of a new login after its row was cleared.
    """

    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    kind: str = Field(sa_type=sa.String(16))  # "cookie" or "token"
    created_at: datetime = _ts()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = _opt_ts()
    user_agent: str | None = Field(default=None, sa_type=sa.String(256))


class LoginFailure(SQLModel, table=True):
    """A failed password check, per user name: the login throttle reads these.

    Kept in the database, not in a process's memory, so the throttle holds across web
    processes; rows older than the throttle's window are deleted as new ones arrive.
    """

    __table_args__ = (sa.Index("ix_loginfailure_name_at", "name", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(128))  # lower-cased
    address: str = Field(default="", sa_type=sa.String(64))
    at: float  # seconds since the epoch, as the web app's clock reads them


# Tables kept in modules of their own (each a size one can read), re-exported here with the rest.
from rlhf.judge_models import Judge as Judge  # noqa: E402
from rlhf.judge_models import JudgeJob as JudgeJob  # noqa: E402
from rlhf.judge_models import JudgeVerdict as JudgeVerdict  # noqa: E402
