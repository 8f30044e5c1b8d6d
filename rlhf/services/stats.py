"""Counts for the console, the CLI and the API."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from rlhf.models import (
    Checkpoint,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    GenerationJob,
    Prompt,
    Ranking,
    Response,
    TrainingRun,
    User,
    Vote,
    VoteKind,
)
from rlhf.services import quality
from rlhf.services.comparisons import remaining_for_rater
from rlhf.services.rankings import rankings_left_for
from rlhf.services.vote_kinds import PEOPLE


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
        # Rankings go only to clients that take them (the Rate tab does): counted apart.
        "rankings_left_for_you": rankings_left_for(session=session, rater_id=rater_id),
    }


def _grouped_where(session: Session, column, *where) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).where(*where).group_by(column)).all()
    return {getattr(k, "value", k): n for k, n in rows}


def overall_stats(*, session: Session) -> dict[str, Any]:
    """Every count the console, ``rlhf stats`` and ``GET /api/stats`` show, exact, in one pass over
    each big table: at a million votes the vote table is read once (one ``GROUP BY`` of rater, kind
    and choice, an index-only scan where the index (rater_id, kind, choice) exists), not once per
    figure, and no counter row is updated by every vote."""
    per = session.exec(
        select(col(Vote.rater_id), col(Vote.kind), col(Vote.choice), func.count()).group_by(
            col(Vote.rater_id), col(Vote.kind), col(Vote.choice)
        )
    ).all()
    # Votes are people's (and simulated raters'); a reward model's machine labels are counted apart.
    people = [(rater, _value(kind), _value(choice), n) for rater, kind, choice, n in per if kind in PEOPLE]
    by_rater_id: Counter[int] = Counter()
    by_choice: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    for rater, kind, choice, n in people:
        by_rater_id[rater] += n
        by_choice[choice] += n
        by_kind[kind] += n
    names = dict(session.exec(select(User.id, User.name).where(col(User.id).in_(list(by_rater_id)))).all())
    pairs = session.exec(
        select(col(Comparison.status), col(Comparison.source), func.count()).group_by(
            col(Comparison.status), col(Comparison.source)
        )
    ).all()
    by_status: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    for status, source, n in pairs:
        by_status[_value(status)] += n
        by_source[_value(source)] += n
    return {
        "prompts": _count(session, Prompt),
        "responses": _count(session, Response),
        "comparisons": dict(sorted(by_status.items())),
        "comparisons_by_source": dict(sorted(by_source.items())),
        "rankings": _grouped(session, Ranking.status),  # each also counted as its pairs, source "ranking"
        "votes": sum(by_kind.values()),
        "votes_by_choice": dict(sorted(by_choice.items())),
        "votes_by_kind": dict(sorted(by_kind.items())),  # people's and simulated raters
        "machine_labels": sum(n for _, kind, _, n in per if kind == VoteKind.machine),
        "judge_labels": sum(n for _, kind, _, n in per if kind == VoteKind.judge),
        "votes_by_rater": dict(sorted((names[r], n) for r, n in by_rater_id.items())),
        "users": _grouped(session, User.role),
        "checkpoints": _grouped(session, Checkpoint.status),
        "runs": _grouped(session, TrainingRun.status),
        "generation_jobs": _grouped(session, GenerationJob.status),
    }


def engineer_stats(*, session: Session, rater_id: int) -> dict[str, Any]:
    """What ``GET /api/stats`` answers an engineer: every count, the rater-quality figures, and
    their own counts (:func:`rater_stats`) under ``mine``.

    On PostgreSQL the quality measure, which reads every vote (about half a second at a million),
    runs on a connection of its own while this one counts, so the answer takes about as long as
    the measure alone, not as long as everything one after another. Each part reads committed
    data, as the parts always did one statement at a time.
    """
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality") as pool:
            measured = pool.submit(_measure_apart, bind)
            counts, mine = overall_stats(session=session), rater_stats(session=session, rater_id=rater_id)
            figures = measured.result()
    else:
        counts, mine = overall_stats(session=session), rater_stats(session=session, rater_id=rater_id)
        figures = quality.measure(session=session).as_dict()
    return {"scope": "all", **counts, "quality": figures, "mine": mine}


def _measure_apart(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        return quality.measure(session=session).as_dict()


def _value(key) -> str:
    return getattr(key, "value", key)


class SharedCounts:
    """:func:`overall_stats` for every reader in one process, at most ``max_age_s`` old.

    Every open console tab reads the same counts, so engineers watching the console add no
    load: the process counts at most once per ``max_age_s`` (and once per :meth:`invalidate`),
    however many tabs tick. A reader that arrives while a count runs waits for it and shares it,
    rather than starting its own. The age is taken from when the count began, so counts served
    never miss a change committed more than ``max_age_s`` before they are served.

    There is no change marker (such as the newest vote id) to skip a recount: votes arrive all
    the time exactly when the counts are worth watching, so a marker would save nothing then,
    and removed votes, reopened pairs and finished runs would not move it.
    """

    def __init__(
        self,
        open_session: Callable[[], AbstractContextManager[Session]],
        *,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_age_s <= 0:
            raise ValueError("max_age_s must be above 0")
        self._open_session = open_session
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, Any] | None = None
        self._counted_at = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            started = self._clock()
            if self._counts is None or started - self._counted_at >= self._max_age_s:
                with self._open_session() as session:
                    self._counts = overall_stats(session=session)
                self._counted_at = started
            return self._counts

    def invalidate(self) -> None:
        """The next :meth:`get` counts afresh (after a change this process made, to show it at once)."""
        with self._lock:
            self._counts = None
