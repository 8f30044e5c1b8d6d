"""AI judges' tables: the judges, their jobs, and each pair's verdicts.

A judge (:mod:`rlhf.services.judges`) votes through a user of its own (role ``judge``, which
can never log in); its votes have the kind ``judge`` and the source ``judge:<judge id>``.
A :class:`JudgeVerdict` keeps what it said on each pair in each order, voted or not, so its
position consistency and the pairs it could not decide are measured from every pair it judged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from rlhf.columns import enum_field, json_field, opt_ts, ts
from rlhf.kinds import JobStatus


class Judge(SQLModel, table=True):
    """An OpenAI-compatible endpoint (or a serving checkpoint) that judges pairs with a template."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(sa.String(128), unique=True, nullable=False))
    user_id: int = Field(foreign_key="user.id")  # the user its votes are cast as
    # Where it is asked: a base URL and model, or a checkpoint served by the app's engine.
    url: str | None = Field(default=None, sa_type=sa.String(2048))
    model: str | None = Field(default=None, sa_type=sa.String(512))
    checkpoint_id: int | None = Field(default=None, foreign_key="checkpoint.id")
    # The name of the environment variable holding its API key: the key itself is never stored.
    api_key_env: str | None = Field(default=None, sa_type=sa.String(256))
    template: str | None = Field(default=None, sa_type=sa.Text)  # None: the shipped default
    swap: bool = True  # judged in both orders; a verdict that flips with the order stores no vote
    concurrency: int = 4
    timeout_s: float = 60.0
    # The share of pairs it labelled that still go to people, so its audit stays current.
    audit_rate: float = 0.1
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = ts()


class JudgeJob(SQLModel, table=True):
    """One judge judging the comparisons it has not judged yet (a worker job on the generate queue)."""

    id: int | None = Field(default=None, primary_key=True)
    status: JobStatus = enum_field(JobStatus, JobStatus.queued)
    judge_id: int = Field(foreign_key="judge.id", index=True)
    params: dict[str, Any] = json_field(dict)  # source, limit
    result: dict[str, Any] = json_field(dict)
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = ts()
    started_at: datetime | None = opt_ts()
    finished_at: datetime | None = opt_ts()
    heartbeat_at: datetime | None = opt_ts()


class JudgeVerdict(SQLModel, table=True):
    """What a judge said on one comparison: the verdict in the stored order and, swapped, in the other.

    Verdicts are ``a``, ``b`` or ``tie`` in terms of the stored response_a / response_b, whatever
    order the judge was shown; None where its output could not be parsed. ``outcome`` is
    ``voted`` (a vote was stored), ``inconsistent`` (the two orders disagree: no vote) or
    ``unparseable`` (no verdict could be read: no vote).
    """

    __table_args__ = (sa.UniqueConstraint("judge_id", "comparison_id", name="uq_judge_verdict_pair"),)

    id: int | None = Field(default=None, primary_key=True)
    judge_id: int = Field(foreign_key="judge.id", index=True)
    comparison_id: int = Field(foreign_key="comparison.id", index=True)
    job_id: int | None = Field(default=None, foreign_key="judgejob.id")
    verdict: str | None = Field(default=None, sa_type=sa.String(8))  # shown a, b in the stored order
    swapped_verdict: str | None = Field(default=None, sa_type=sa.String(8))  # shown b, a; None: not asked
    outcome: str = Field(sa_type=sa.String(16))
    tokens: int = 0
    created_at: datetime = ts()
