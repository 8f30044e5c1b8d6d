"""Request and response bodies for AI judges (``/api/judges``, ``/api/judge-jobs``).

A judge's API key is never stored, so never sent: only the name of the environment variable
a worker reads it from.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from feedback_ui.schemas import RowId, Storable, UTCDatetime
from rlhf.models import JobStatus

# A template is short text; this bounds what a request may make the server parse.
MAX_TEMPLATE_CHARS = 100_000


class JudgeCreate(BaseModel):
    """A judge at an OpenAI-compatible URL (``url`` and ``model``), or a serving checkpoint (``checkpoint_id``).

    Values are checked by the service, so a refusal names the field (``param``) and the reason."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Storable] = Field(max_length=256, description="unique: letters, digits and _ . -")
    url: Annotated[str | None, Storable] = Field(
        default=None, max_length=2048, description="base URL of an OpenAI-compatible server (with or without /v1)"
    )
    model: Annotated[str | None, Storable] = Field(
        default=None, max_length=512, description="the model name that server knows it by"
    )
    checkpoint_id: Annotated[RowId | str | None, Storable] = Field(
        default=None, description="a serving policy checkpoint (id or name), asked through the app's engine"
    )
    api_key_env: Annotated[str | None, Storable] = Field(
        default=None,
        max_length=256,
        description="the environment variable holding the API key where jobs run (the key itself is never sent)",
    )
    template: Annotated[str | None, Storable] = Field(
        default=None,
        max_length=MAX_TEMPLATE_CHARS,
        description="a Jinja2 prompt template using a and b, asking for [[A]], [[B]] or [[C]]; null: the default",
    )
    swap: bool = Field(default=True, description="ask in both orders; a verdict that flips stores no vote")
    concurrency: int = Field(default=4, description="requests in flight at once (1 to 64)")
    timeout_s: float = Field(default=60.0, description="seconds per request (1 to 600)")
    audit_rate: float = Field(default=0.1, description="share of the pairs it labels that still go to people (0 to 1)")
    # Read only to be refused with the reason (an unknown field's 422 would quote the key back).
    api_key: SkipJsonSchema[Any] = Field(default=None, exclude=True)


class JudgePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    url: str | None
    model: str | None
    checkpoint_id: int | None
    api_key_env: str | None
    template: str | None = Field(description="null: the default template")
    swap: bool
    concurrency: int
    timeout_s: float
    audit_rate: float
    created_at: UTCDatetime


class JudgeAuditSummary(BaseModel):
    """The headline of a judge's audit against people (the full one is on ``GET /api/judges/{id}``)."""

    votes: int = Field(description="votes it has cast")
    overlap: int = Field(description="pairs voted on by both people and the judge")
    agreement: float | None = Field(description="share of the overlap where it matches the people's majority")
    agreement_without_ties: float | None
    kappa: float | None = Field(description="Cohen's kappa against the people's majority")
    position_consistency: float | None = Field(description="share of pairs judged in both orders where both agree")
    label_p: float | None = Field(description="the probability its votes train with; null: they do not train")
    label_p_from: str | None = Field(description="gold, corrected or agreement")
    trains: bool = Field(
        default=False,
        description="whether its votes train: a label_p, and shown better than a coin flip (anytime-valid evidence)",
    )
    reason: str | None = Field(default=None, description="why its votes do not train")


class JudgeListed(JudgePublic):
    audit: JudgeAuditSummary


class JudgeJobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    status: JobStatus
    judge_id: int
    params: dict[str, Any] = Field(description="source and limit")
    result: dict[str, Any] = Field(
        description="pairs judged, votes stored by choice, inconsistent and unparseable pairs, tokens, seconds"
    )
    error: str | None
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None


class JudgeDetail(JudgePublic):
    audit: dict[str, Any] = Field(
        description="agreement, agreement without ties, kappa, position consistency, length bias, gold, "
        "label_p and where it comes from (or the reason it has none), each with its count"
    )
    jobs: list[JudgeJobPublic] = Field(description="its most recent jobs, newest first")


class JudgeJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Storable] = Field(
        default="all", max_length=32, description="which comparisons: all, queue, arena or written"
    )
    limit: int | None = Field(default=None, description="at most this many pairs (null: every pair it has not judged)")


class JudgeJobQueued(BaseModel):
    job_id: int
    status: JobStatus
