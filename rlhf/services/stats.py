"""Counts for the console, the CLI and the API."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, func, select

from rlhf.models import (
    Checkpoint,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    GenerationJob,
    Prompt,
    Response,
    TrainingRun,
    User,
    Vote,
)
from rlhf.services.comparisons import remaining_for_rater
from rlhf.services.vote_kinds import human_vote, machine_vote


def _count(session: Session, model, *where) -> int:
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


def _grouped(session: Session, column, *where) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).where(*where).group_by(column)).all()
    return {getattr(k, "value", k): n for k, n in rows}


def rater_stats(*, session: Session, rater_id: int) -> dict[str, Any]:
    """This rater's votes, the open comparisons, and how many of those they could still be handed
    (``left_for_you``: not the ones they answered, skipped or others hold, nor gold pairs without regular work)."""
    mine = _grouped_where(session, Vote.choice, Vote.rater_id == rater_id)
    return {
        "votes": sum(mine.values()),
        "by_choice": mine,
        "open_comparisons": _count(
            session, Comparison, Comparison.status == ComparisonStatus.open, Comparison.source == ComparisonSource.queue
        ),
        "left_for_you": remaining_for_rater(session=session, rater_id=rater_id),
    }


def _grouped_where(session: Session, column, *where) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).where(*where).group_by(column)).all()
    return {getattr(k, "value", k): n for k, n in rows}


def overall_stats(*, session: Session) -> dict[str, Any]:
    # Votes are people's (and simulated raters'); a reward model's machine labels are counted apart.
    per_rater = session.exec(
        select(User.name, func.count(col(Vote.id)))
        .join(Vote, col(Vote.rater_id) == User.id)
        .where(human_vote())
        .group_by(User.name)
        .order_by(User.name)
    ).all()
    return {
        "prompts": _count(session, Prompt),
        "responses": _count(session, Response),
        "comparisons": _grouped(session, Comparison.status),
        "comparisons_by_source": _grouped(session, Comparison.source),
        "votes": _count(session, Vote, human_vote()),
        "votes_by_choice": _grouped(session, Vote.choice, human_vote()),
        "votes_by_kind": _grouped(session, Vote.kind, human_vote()),  # people's and simulated raters
        "machine_labels": _count(session, Vote, machine_vote()),
        "votes_by_rater": dict(per_rater),
        "users": _grouped(session, User.role),
        "checkpoints": _grouped(session, Checkpoint.status),
        "runs": _grouped(session, TrainingRun.status),
        "generation_jobs": _grouped(session, GenerationJob.status),
    }
