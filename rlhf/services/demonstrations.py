"""Rater-written answers: demonstrations for SFT, and preferences of the written answer over the models'.

A demonstration is the conversation up to a user turn plus the answer the rater wanted.
Written for a comparison the rater was shown, it also becomes one preference per model
answer ("written over model"), stored as comparisons of source ``written`` with the
rater's vote, so training can choose whether to use them. It may edit either model
answer or be new; an answer identical to a model's gives no preference over that one.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from rlhf.dataset_rows import SFTRow, sft_hash
from rlhf.errors import Conflict, InvalidInput, PermissionDenied
from rlhf.models import (
    Choice,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    Demonstration,
    Prompt,
    Response,
    User,
    Vote,
    stored_id,
)
from rlhf.services.arena import validate_conversation
from rlhf.services.comparisons import assignment_for, get_comparison
from rlhf.services.dataset import write_rows
from rlhf.services.quality import left_out_raters
from rlhf.services.snapshots import SFTSnapshot

MAX_DEMONSTRATION_CHARS = 20_000


def record_demonstration(
    *,
    session: Session,
    rater: User,
    text: str,
    comparison_id: int | None = None,
    messages: Any = None,
    max_turns: int = 1000,
) -> Demonstration:
    """Store the answer a rater wanted, for a comparison they were shown or a conversation of their own."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text is empty: write the answer you wanted")
    if len(text) > MAX_DEMONSTRATION_CHARS:
        raise InvalidInput(f"text is {len(text)} characters long; the limit is {MAX_DEMONSTRATION_CHARS}")
    if "\x00" in text:
        raise InvalidInput("text contains a NUL character")
    text = text.strip()
    rater_id = stored_id(rater)
    if comparison_id is None:
        if messages is None:
            raise InvalidInput("give comparison_id (an answer for a pair you were shown) or messages")
        conversation = validate_conversation(messages, max_chars=MAX_DEMONSTRATION_CHARS, max_turns=max_turns)
        demo = Demonstration(rater_id=rater_id, messages=conversation, text=text)
        session.add(demo)
        session.flush()
        return demo
    comp = get_comparison(session=session, comparison_id=comparison_id)
    if assignment_for(session=session, rater_id=rater_id, comparison_id=comparison_id) is None:
        raise PermissionDenied(f"you were never shown comparison {comparison_id}")
    prompt = session.get_one(Prompt, comp.prompt_id)  # a comparison's prompt and responses always exist
    if (
        messages is not None
        and validate_conversation(messages, max_chars=MAX_DEMONSTRATION_CHARS, max_turns=max_turns) != prompt.messages
    ):
        raise InvalidInput(f"messages differ from the conversation of comparison {comparison_id}; send one of them")
    demo = Demonstration(rater_id=rater_id, comparison_id=comparison_id, messages=prompt.messages, text=text)
    session.add(demo)
    written = Response(
        prompt_id=comp.prompt_id, checkpoint_id=None, text=text, params={"source": "written", "rater_id": rater_id}
    )
    session.add(written)
    session.flush()
    for model_response_id in (comp.response_a_id, comp.response_b_id):
        model_answer = session.get_one(Response, model_response_id)
        if model_answer.text.strip() == text:
            continue  # the rater kept this answer as it was: nothing to prefer over it
        pref = Comparison(
            prompt_id=comp.prompt_id,
            response_a_id=stored_id(written),
            response_b_id=model_response_id,
            status=ComparisonStatus.closed,
            target_votes=1,
            vote_count=1,
            strategy="written",
            source=ComparisonSource.written,
        )
        session.add(pref)
        session.flush()
        session.add(Vote(comparison_id=stored_id(pref), rater_id=rater_id, choice=Choice.a, source="human"))
    session.flush()
    return demo


def list_demonstrations(
    *, session: Session, limit: int | None = None, rater_id: int | None = None
) -> list[Demonstration]:
    query = select(Demonstration).order_by(col(Demonstration.id).desc())
    if rater_id is not None:
        query = query.where(Demonstration.rater_id == rater_id)
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))


def sft_rows(*, session: Session, exclude_raters: set[int] | None = None) -> list[SFTRow]:
    """Demonstrations in TRL's conversational SFT format: ``messages`` ending with the rater's answer, in id order."""
    skip = exclude_raters or set()
    rows = []
    for d in session.exec(select(Demonstration).order_by(col(Demonstration.id))):
        if d.rater_id in skip:
            continue
        rows.append(
            SFTRow(
                messages=[*d.messages, {"role": "assistant", "content": d.text}],
                demonstration_id=stored_id(d),
                rater_id=d.rater_id,
                comparison_id=d.comparison_id,
            )
        )
    return rows


def export_sft(*, session: Session, path, fmt: str | None = None, exclude_flagged: bool = True) -> int:
    """Write the demonstrations in TRL's conversational SFT format (excluded and flagged raters left out)."""
    left_out = left_out_raters(session=session, exclude_flagged=exclude_flagged)
    rows = sft_rows(session=session, exclude_raters=set(left_out["excluded"]) | set(left_out["flagged"]))
    write_rows(rows, path, fmt)
    return len(rows)


def demonstration_snapshot(*, session: Session, exclude_raters: set[int] | None = None) -> SFTSnapshot | None:
    """Freeze the stored demonstrations an SFT run trains on (ids and a content hash), or None if there are none."""
    rows = sft_rows(session=session, exclude_raters=exclude_raters)
    if not rows:
        return None
    return SFTSnapshot(
        rows=len(rows),
        hash=sft_hash(rows),
        aggregate="demonstrations",
        demonstration_ids=[r.demonstration_id for r in rows],
    )


def snapshot_demonstrations(*, session: Session, snapshot: SFTSnapshot) -> list[SFTRow]:
    """The demonstrations a snapshot froze, in id order; refuses if they no longer match its hash."""
    wanted = set(snapshot.demonstration_ids)
    rows = [r for r in sft_rows(session=session) if r.demonstration_id in wanted]
    if sft_hash(rows) != snapshot.hash:
        raise Conflict("the demonstrations of this run's snapshot changed since it was taken (hash mismatch)")
    return rows
