"""Request and response bodies of the arena and demonstration endpoints.

Answers are sent without the names of the models that wrote them; the names come from
``GET /api/arena/{comparison_id}`` once the rater has voted.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from feedback_ui.schemas import RowId, Storable, UTCDatetime


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Storable]


class ArenaCreate(BaseModel):
    messages: list[ChatMessage] = Field(
        description="the conversation so far: an optional system message, then user and assistant turns "
        "alternating, ending with the user turn both models answer",
        min_length=1,
        max_length=201,
    )
    stream: bool = Field(
        default=False,
        description="answer as server-sent events: `a` and `b` (JSON string "
        "deltas), then `done` ({comparison_id}) or `error` ({detail})",
    )


class ArenaBattle(BaseModel):
    comparison_id: int
    a: str
    b: str


class ArenaNames(BaseModel):
    comparison_id: int
    a: str = Field(description="the checkpoint that wrote answer A")
    b: str = Field(description="the checkpoint that wrote answer B")


class DemonstrationCreate(BaseModel):
    comparison_id: RowId | None = Field(
        default=None,
        description="a comparison you were shown: its conversation "
        "is the prompt, and your answer is also stored as "
        "preferred over both model answers",
    )
    messages: list[ChatMessage] | None = Field(
        default=None, max_length=201, description="a conversation ending with a user turn (without comparison_id)"
    )
    text: Annotated[str, Storable] = Field(description="the answer you wanted")


class DemonstrationPublic(BaseModel):
    id: int
    comparison_id: int | None
    messages: list[dict]
    text: str
    created_at: UTCDatetime
