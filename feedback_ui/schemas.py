"""Request and response bodies of the REST API, split per entity: ``…Base`` (shared
fields), ``…Create`` (what a client sends), ``…Public`` (what it gets back).

Responses never carry what a client must not see: password hashes, which model wrote
which side of a comparison, the stored order of a vote.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from rlhf.models import Algorithm, CheckpointKind, CheckpointStatus, Choice, JobStatus, Role, as_utc
from rlhf.services.app_settings import MAX_VALUE_CHARS
from rlhf.services.generation_params import (
    Limit,
    MaxNewTokens,
    PerCheckpoint,
    Pool,
    Rank,
    Strategy,
    TargetVotes,
    Temperature,
)
from rlhf.services.votes import MAX_RATIONALE_CHARS

# SQLite hands back naive datetimes; every stored one is UTC, and the API says so.
UTCDatetime = Annotated[datetime, AfterValidator(as_utc)]
# A row id: what both databases can hold (a larger number would fail in the driver, not here).
RowId = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def _storable(value: Any) -> Any:
    """Refuse what JSON can carry in but nothing can store or send back: lone surrogates
    (``"\\ud800"``) and non-finite numbers (``1e999``, ``NaN``), at any depth."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (it contains a lone surrogate)") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _storable(item)
    return value


Storable = AfterValidator(_storable)


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    database: str = Field(description='"ok" or "unavailable: <reason>"')
    broker: str = Field(description='"embedded", "ok" or "unavailable: <reason>"')


class Message(BaseModel):
    role: str
    content: str


class ComparisonHandout(BaseModel):
    """One comparison as this rater sees it: ``a`` is the left response, ``b`` the right."""

    kind: Literal["pair"] = "pair"
    comparison_id: int
    prompt: list[Message] = Field(description="the conversation so far; the last message is the user's")
    a: str
    b: str


class RankingHandout(BaseModel):
    """A ranking as this rater sees it (``GET /api/comparisons/next?kinds=ranking``): order its answers."""

    kind: Literal["ranking"] = "ranking"
    ranking_id: int
    prompt: list[Message] = Field(description="the conversation so far; the last message is the user's")
    answers: list[str] = Field(description="in the order this rater sees them; an order names them by index, from 0")


Handed = Annotated[ComparisonHandout | RankingHandout, Field(discriminator="kind")]

StrengthLevel = Literal[1, 2, 3]
_STRENGTH_DOC = "how much better the chosen answer is, on an A or B vote: 1 slightly, 2 clearly, 3 much better"


class VoteBase(BaseModel):
    comparison_id: RowId
    choice: Choice = Field(description="in the order this rater was shown: a = left, b = right")
    rationale: Annotated[str | None, Storable] = Field(default=None, max_length=MAX_RATIONALE_CHARS)
    strength: StrengthLevel | None = Field(default=None, description=_STRENGTH_DOC + "; null when not said")

    @model_validator(mode="after")
    def _strength_on_a_or_b(self) -> Self:
        if self.strength is not None and self.choice not in (Choice.a, Choice.b):
            raise ValueError(f"a strength says how much better A or B is: a {self.choice.value} vote has none")
        return self


class VoteStrength(BaseModel):
    """``PATCH /api/votes/{id}``: the strength of one's own vote, within the undo window."""

    model_config = ConfigDict(extra="forbid")
    strength: StrengthLevel | None = Field(description=_STRENGTH_DOC + "; null takes it back")


class VoteCreate(VoteBase):
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="any string unique to this vote (or the Idempotency-Key header); a retry with the same key "
        "returns the stored vote",
    )


class VotePublic(VoteBase):
    id: int
    created_at: UTCDatetime
    created: bool = Field(description="false when this request repeated a vote already stored")


class VoteAndNext(BaseModel):
    """A vote with this rater's next pair (``POST /api/votes?next=true``): one round trip per judgement."""

    vote: VotePublic
    next: Handed | None = Field(
        description="the next pair, already leased to this rater; null when nothing is left for them"
    )


_ORDER_DOC = (
    "every answer's index (as shown, from 0) once, in groups, best group first; answers in one group tie: "
    "[[2], [0, 3], [1]]"
)


class RankingCreate(BaseModel):
    """``POST /api/rankings``: this rater's order of a ranking they were handed."""

    model_config = ConfigDict(extra="forbid")
    ranking_id: RowId
    order: list[list[Annotated[int, Field(ge=0, le=100)]]] = Field(min_length=1, description=_ORDER_DOC)
    rationale: Annotated[str | None, Storable] = Field(default=None, max_length=MAX_RATIONALE_CHARS)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="as for a vote: a retry with it returns the stored order",
    )


class RankingPublic(BaseModel):
    ranking_id: int
    order: list[list[int]] = Field(description=_ORDER_DOC)
    vote_ids: list[int] = Field(description="the votes it was stored as, one per pair of answers")
    created_at: UTCDatetime
    created: bool = Field(description="false when this request repeated an order already stored")


class RankingAndNext(BaseModel):
    ranking: RankingPublic
    next: Handed | None = Field(description="what this rater judges next, already leased to them; null when nothing")


class SkipPublic(BaseModel):
    comparison_id: int | None = Field(default=None, description="the pair passed on (a pair's skip)")
    ranking_id: int | None = Field(default=None, description="the ranking passed on (a ranking's skip)")
    skipped_at: UTCDatetime


class ComparisonPublic(_Public):
    id: int
    prompt_id: int
    response_a_id: int
    response_b_id: int
    status: str
    target_votes: int
    vote_count: int
    strategy: str
    reward_margin: float | None
    is_gold: bool
    gold_choice: Choice | None


class GoldMark(BaseModel):
    answer: Choice | None = Field(
        description="the known answer in the comparison's stored order (a = response_a); "
        "null makes it a regular comparison again"
    )


class GoldImportPublic(BaseModel):
    created: int
    comparison_ids: list[int]


class PromptImportPublic(BaseModel):
    created: int
    skipped: int = Field(description="already present: same id as an earlier import")
    ids: list[int]


class CheckpointBase(_Public):
    name: str
    kind: CheckpointKind
    status: CheckpointStatus
    path: str


class CheckpointPublic(CheckpointBase):
    id: int
    parent_id: int | None
    run_id: int | None
    adapter: str | None = Field(default=None, description="lora or prompt_tuning for an adapter checkpoint")
    base_checkpoint_id: int | None = Field(default=None, description="the checkpoint an adapter applies to")
    metrics: dict[str, Any]
    created_at: UTCDatetime


class GenerationJobCreate(BaseModel):
    """The limits are the service's own (:mod:`rlhf.services.generation_params`), written once."""

    per_checkpoint: PerCheckpoint | None = None
    limit: Limit | None = None
    tag: Annotated[str | None, Storable] = Field(default=None, description="only prompts with this tag")
    target_votes: TargetVotes | None = Field(
        default=None, description="votes wanted per comparison (default: RLHF_VOTES_PER_COMPARISON)"
    )
    select: Strategy = Field(
        default="random",
        description="pair selection: random, or uncertain (the pairs the reward model is least "
        "sure about, smallest reward margin, are opened and rated first)",
    )
    reward_checkpoint_id: Annotated[RowId | str | None, Storable] = Field(
        default=None,
        description="id or name of the reward model for select=uncertain; default: the newest one not retired",
    )
    pool: Pool | None = Field(
        default=None,
        description="select=uncertain: prompts sampled to choose from (default 4 x limit; all when no limit)",
    )
    max_new_tokens: MaxNewTokens = 64
    temperature: Temperature = 1.0
    ask_strength: bool = Field(
        default=False, description="the Rate tab asks how much better on these pairs (RLHF_ASK_STRENGTH: on all)"
    )
    rank: Rank | None = Field(
        default=None, description="open a ranking of this many answers per prompt instead of pairs"
    )


class GenerationJobPublic(_Public):
    id: int
    status: JobStatus
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None


class RunBase(BaseModel):
    algorithm: Algorithm
    base_checkpoint_id: Annotated[RowId | str | None, Storable] = Field(
        default=None, description="id or name; default: the newest serving policy"
    )
    reward_checkpoint_id: Annotated[RowId | str | None, Storable] = Field(
        default=None, description="a reward model (ppo, rloo, grpo)"
    )
    params: Annotated[dict[str, Any], Storable] = Field(
        default_factory=dict, description='training parameters, e.g. {"steps": 50}'
    )


class RunCreate(RunBase):
    serve: bool = Field(default=False, description="serve the new checkpoint when the run succeeds")
    ties: Literal["drop", "keep"] = "drop"
    aggregate: Literal["majority", "none"] = Field(
        default="majority",
        description="majority: one row per comparison, labelled by most of its votes; none: one row per vote",
    )
    exclude_flagged: bool = Field(default=True, description="leave out raters flagged by their gold accuracy")
    labels: str = Field(
        default="human",
        description="whose votes: a comma list of human (people only), machine (a reward model's labels) and "
        "judge (AI judges' votes, once a judge has earned a label_p), or all; both = human,machine",
    )


class RunPublic(RunBase):
    id: int
    status: JobStatus
    output_checkpoint_id: int | None
    progress: dict[str, Any]
    metrics: dict[str, Any]
    error: str | None
    snapshot: dict[str, Any] = Field(description="the frozen dataset: rows, ties, content hash")
    votes: int = Field(description="votes in the snapshot")
    serve_on_success: bool
    cancel_requested: bool
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None


class RunDetail(RunPublic):
    log: list[dict[str, Any]] = Field(description="one entry per logged step: step, loss, reward, KL …")


class StandingPublic(_Public):
    rank: int | None
    checkpoint_id: int
    name: str
    status: str
    rating: float | None = Field(description="Elo-like: 400 points = 10:1 odds; mean of rated checkpoints is 1000")
    ci_low: float | None = Field(description="95% bootstrap interval")
    ci_high: float | None
    votes: int
    wins: int
    losses: int
    ties: int


class LeaderboardPublic(_Public):
    standings: list[StandingPublic]
    votes: int = Field(description="human votes between responses of different checkpoints")
    bootstrap: int


class GuidelinesBase(BaseModel):
    markdown: Annotated[str, Storable] = Field(max_length=MAX_VALUE_CHARS)


class GuidelinesPublic(GuidelinesBase):
    updated_at: UTCDatetime | None


class UserBase(_Public):
    name: str = Field(min_length=1, max_length=128)
    role: Role = Role.rater


class UserCreate(UserBase):
    password: Annotated[str, Storable] = Field(min_length=1, max_length=1024)


class UserUpdate(BaseModel):
    active: bool | None = Field(default=None, description="false: the user can no longer log in")
    excluded: bool | None = Field(
        default=None, description="true: this rater's votes are left out of exports and new training runs"
    )


class RaterExclusion(BaseModel):
    excluded: bool = Field(description="true: leave this rater's votes out of exports and new training runs")


class UserPublic(UserBase):
    id: int
    active: bool
    excluded: bool = False
    created_at: UTCDatetime
