"""What a generation job is asked to do: one typed object, validated where the job is created.

The CLI, the REST schema and the console all hand their values to
:func:`rlhf.services.generation_jobs.create_generation_job`, which validates them here;
the worker reads the stored job back through the same model. The limits are written
once, as the ``Annotated`` types below, and the REST schema reuses them.
Importable without torch: the web process validates, the worker samples.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from rlhf.errors import InvalidInput

Strategy = Literal["random", "uncertain"]
Temperature = Annotated[float, Field(gt=0, le=5, description="sampling temperature (above 0, at most 5)")]
TopP = Annotated[
    float,
    Field(gt=0, le=1, description="nucleus sampling: keep the smallest set of tokens whose probability reaches this"),
]
MaxNewTokens = Annotated[int, Field(ge=1, le=4096, description="longest response, in tokens")]
PerCheckpoint = Annotated[
    int,
    Field(ge=1, le=64, description="samples per checkpoint and prompt (default 2 with one serving checkpoint, else 1)"),
]
TargetVotes = Annotated[int, Field(ge=1, le=100, description="votes (distinct raters) wanted per comparison")]
Limit = Annotated[int, Field(ge=1, description="at most this many prompts (fewest comparisons first)")]
Pool = Annotated[int, Field(ge=1, description="select=uncertain: prompts sampled to choose from")]
Rank = Annotated[
    int,
    Field(ge=3, le=6, description="open rankings of this many answers per prompt (3 to 6) instead of pairs"),
]


class Sampling(BaseModel):
    """How responses are sampled; the seed is the job's."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    max_new_tokens: MaxNewTokens = 64
    batch_size: Annotated[int, Field(ge=1, le=1024, description="sequences per forward pass")] = 32
    max_prompt_tokens: Annotated[int, Field(ge=1, le=1_000_000, description="longer prompts keep their end")] = 512


class GenerationParams(BaseModel):
    """A generation job's parameters, as stored on its row."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_checkpoint: PerCheckpoint | None = None
    limit: Limit | None = None
    target_votes: TargetVotes = 1
    strategy: Strategy = "random"
    tag: str | None = None
    seed: int | None = None
    reward_checkpoint_id: int | None = None
    pool: Pool | None = None
    sampling: Sampling = Sampling()
    # The Rate tab asks how much better on this job's pairs (as RLHF_ASK_STRENGTH does on all).
    ask_strength: bool = False
    # Open a ranking of this many answers per prompt (rlhf.services.rankings) instead of pairs.
    rank: Rank | None = None

    @classmethod
    def parse(cls, values: dict[str, Any]) -> "GenerationParams":
        """Validate, turning pydantic's report into one readable :class:`InvalidInput`."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise InvalidInput("; ".join(_describe(e) for e in exc.errors())) from None


def _describe(error: ErrorDetails) -> str:
    field = ".".join(str(p) for p in error["loc"] if p != "sampling") or "parameters"
    if error["type"] == "extra_forbidden":
        return f"unknown generation parameter {field!r}"
    if field == "strategy":
        return f"unknown pair selection {error.get('input')!r}; use random or uncertain"
    return f"{field.replace('_', ' ')}: {error['msg'].lower()} (got {error.get('input')!r})"
