"""AI judges: registered endpoints that vote on pairs like a rater, and their jobs.

A judge is an OpenAI-compatible endpoint (a URL and a model: a vLLM server, a hosted API) or
a serving checkpoint asked through the app's own inference engine. It votes as a user of its
own (role ``judge``, which can never log in); its votes have the kind ``judge`` and the source
``judge:<judge id>``. A *judge job* (:mod:`rlhf.jobs.judging`) asks it about the comparisons it
has not judged yet, in both orders unless its ``swap`` is off: a verdict that flips with the
order stores no vote (the pair is counted as inconsistent), nor does output without a verdict.

Its votes never count toward a target, agreement, gold accuracy, reliability, the leaderboard
or vote counts (:mod:`rlhf.services.vote_kinds`). How far they train is what it has earned
against people (:mod:`rlhf.services.judge_audit`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import (
    PRIORITY_MACHINE_LABELLED,
    CheckpointKind,
    CheckpointStatus,
    Choice,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    Judge,
    JudgeJob,
    JudgeVerdict,
    Prompt,
    Response,
    Role,
    User,
    Vote,
    VoteKind,
    stored_id,
)
from rlhf.services import job_rows
from rlhf.services.app_settings import get_guidelines
from rlhf.services.checkpoints import get_checkpoint
from rlhf.services.judge_prompts import check_template
from rlhf.services.users import hash_password
from rlhf.services.vote_kinds import human_vote
from rlhf.settings import Settings, get_settings

JUDGE_SOURCE = "judge:"
# Where a judge job may look for pairs. A ranking's pairs are judged only as the ranking, by people.
SOURCES = ("all", "queue", "arena", "written")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
BATCH = 500  # ids per IN list


def judge_source(judge_id: int) -> str:
    return f"{JUDGE_SOURCE}{judge_id}"


@dataclass(frozen=True)
class PairToJudge:
    comparison_id: int
    messages: list[dict]  # the conversation before the answers
    a: str  # the stored response_a
    b: str


@dataclass(frozen=True)
class Verdict:
    """What a judge said on one pair, in terms of the stored response_a / response_b."""

    comparison_id: int
    verdict: str | None  # "a" | "b" | "tie", from the call shown (a, b); None: no verdict in its output
    swapped_verdict: str | None  # from the call shown (b, a); None: not asked, or no verdict
    asked_swapped: bool
    rationale: str | None
    tokens: int

    @property
    def outcome(self) -> str:
        if self.verdict is None or (self.asked_swapped and self.swapped_verdict is None):
            return "unparseable"
        if self.asked_swapped and self.swapped_verdict != self.verdict:
            return "inconsistent"
        return "voted"


def _check_url(url: str, settings: Settings) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"a judge's URL must be http(s)://host[:port][/path], not {url!r}", param="url")
    allowed = settings.judge_url_allow
    if allowed and parts.hostname.lower() not in allowed:
        raise InvalidInput(
            f"host {parts.hostname!r} is not in RLHF_JUDGE_URL_ALLOW ({', '.join(allowed)}): workers call only those",
            param="url",
        )
    return url.strip().rstrip("/")


def _in_range(value: Any, name: str, lo: float, hi: float, kind: type = float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number from {lo:g} to {hi:g}, not {value!r}", param=name) from None
    if isinstance(value, bool) or not lo <= number <= hi or (kind is int and number != value):
        raise InvalidInput(
            f"{name} must be {'a whole number ' if kind is int else ''}from {lo:g} to {hi:g}", param=name
        )
    return number


def register_judge(
    *,
    session: Session,
    name: str,
    url: str | None = None,
    model: str | None = None,
    checkpoint_id: int | str | None = None,
    api_key_env: str | None = None,
    template: str | None = None,
    swap: bool = True,
    concurrency: int = 4,
    timeout_s: float = 60.0,
    audit_rate: float = 0.1,
    created_by: int | None = None,
    settings: Settings | None = None,
) -> Judge:
    """Check and store a judge, and the user its votes are cast as."""
    settings = settings or get_settings()
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"judge name {name!r} may only use letters, digits and _ . - (1-64 characters)", param="name"
        )
    if session.exec(select(Judge).where(Judge.name == name)).first() is not None:
        raise Conflict(f"judge {name!r} already exists")
    if (checkpoint_id is None) == (url is None):
        raise InvalidInput(
            "a judge is asked either at a URL (with a model) or as a serving checkpoint: give one of them", param="url"
        )
    stored_model: str | None = None
    if url is not None:
        url = _check_url(url, settings)
        if not model or not str(model).strip():
            raise InvalidInput("a judge at a URL needs the model name the server knows it by", param="model")
        stored_model = str(model).strip()
    else:
        ckpt = get_checkpoint(session=session, checkpoint_id=checkpoint_id)  # type: ignore[arg-type]  # not None here
        if ckpt.kind is not CheckpointKind.policy or ckpt.status is not CheckpointStatus.serving:
            raise InvalidInput(
                f"checkpoint {ckpt.id} ({ckpt.name}) is not a serving policy: the app's engine serves only those",
                param="checkpoint_id",
            )
        checkpoint_id = stored_id(ckpt)
        if model:
            raise InvalidInput("a checkpoint judge is asked by its checkpoint; leave out the model", param="model")
    if api_key_env is not None and not _ENV.match(api_key_env):
        raise InvalidInput(f"{api_key_env!r} is not an environment variable's name", param="api_key_env")
    if template is not None:
        template = check_template(template)
    user = User(
        name=f"judge:{name}", role=Role.judge, active=False, password_hash=hash_password(secrets.token_urlsafe(24))
    )
    session.add(user)
    session.flush()
    judge = Judge(
        name=name,
        user_id=stored_id(user),
        url=url,
        model=stored_model,
        checkpoint_id=int(checkpoint_id) if checkpoint_id is not None else None,
        api_key_env=api_key_env,
        template=template,
        swap=bool(swap),
        concurrency=_in_range(concurrency, "concurrency", 1, 64, int),
        timeout_s=_in_range(timeout_s, "timeout_s", 1, 600),
        audit_rate=_in_range(audit_rate, "audit_rate", 0, 1),
        created_by=created_by,
    )
    session.add(judge)
    session.flush()
    return judge


def get_judge(*, session: Session, judge: int | str) -> Judge:
    """A judge by id, or by name."""
    found: Judge | None = None
    if isinstance(judge, int) or (isinstance(judge, str) and judge.isdigit()):
        found = session.get(Judge, int(judge))
    if found is None and isinstance(judge, str):
        found = session.exec(select(Judge).where(Judge.name == judge)).first()
    if found is None:
        raise NotFound(f"no judge {judge!r}")
    return found


def list_judges(*, session: Session) -> list[Judge]:
    return list(session.exec(select(Judge).order_by(col(Judge.id))))


def create_judge_job(
    *, session: Session, judge: int | str, source: str = "all", limit: int | None = None, created_by: int | None = None
) -> JudgeJob:
    """Check and store a judge job (it runs in a worker: it calls the judge)."""
    found = get_judge(session=session, judge=judge)
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source!r}", param="source")
    if limit is not None:
        limit = _in_range(limit, "limit", 1, 1_000_000, int)
    job = JudgeJob(judge_id=stored_id(found), params={"source": source, "limit": limit}, created_by=created_by)
    session.add(job)
    session.flush()
    return job


def judge_jobs(*, session: Session, judge_id: int, limit: int = 10) -> list[JudgeJob]:
    """A judge's latest jobs, newest first."""
    query = select(JudgeJob).where(col(JudgeJob.judge_id) == judge_id).order_by(col(JudgeJob.id).desc()).limit(limit)
    return list(session.exec(query))


def get_judge_job(*, session: Session, job_id: int) -> JudgeJob:
    return job_rows.get_job(session=session, table=JudgeJob, job_id=job_id)


def queued_judge_ids(*, session: Session) -> list[int]:
    return job_rows.queued_job_ids(session=session, table=JudgeJob)


def pairs_to_judge(
    *, session: Session, judge: Judge, source: str = "all", limit: int | None = None
) -> list[PairToJudge]:
    """The comparisons this judge has not judged: open ones first, and ones people decided.

    With a limit, up to half of it goes to pairs people voted on (so the judge's agreement is
    measured from its first job), the rest to open pairs; either side's leftover goes to the other.
    """
    ra, rb = aliased(Response), aliased(Response)
    judged = sa.exists().where(col(JudgeVerdict.comparison_id) == Comparison.id, col(JudgeVerdict.judge_id) == judge.id)
    decided = sa.exists().where(col(Vote.comparison_id) == Comparison.id, human_vote())
    query = (
        sa.select(col(Comparison.id), col(Prompt.messages), col(ra.text), col(rb.text), decided)
        .join(Prompt, col(Prompt.id) == Comparison.prompt_id)
        .join(ra, col(ra.id) == Comparison.response_a_id)
        .join(rb, col(rb.id) == Comparison.response_b_id)
        .where(
            col(Comparison.status) != ComparisonStatus.expired,
            col(Comparison.source) != ComparisonSource.ranking,
            ~judged,
        )
        .order_by(col(Comparison.id))
    )
    if source != "all":
        query = query.where(col(Comparison.source) == ComparisonSource(source))
    rows = [r for r in session.connection().execute(query).all() if r[0] is not None]
    people = [r for r in rows if r[4]]
    open_ = [r for r in rows if not r[4]]
    if limit is not None and len(rows) > limit:
        take_people = min(len(people), max(limit - len(open_), limit // 2))
        open_, people = open_[: limit - take_people], people[:take_people]
    return [PairToJudge(int(cid), list(messages), a, b) for cid, messages, a, b, _ in open_ + people]


def judge_job_inputs(*, session: Session, job_id: int) -> tuple[Judge, list[PairToJudge], str]:
    """What a judge job needs: its judge, the pairs to judge in order, and the raters' guidelines."""
    job = get_judge_job(session=session, job_id=job_id)
    judge = get_judge(session=session, judge=job.judge_id)
    pairs = pairs_to_judge(
        session=session, judge=judge, source=job.params.get("source", "all"), limit=job.params.get("limit")
    )
    guidelines = get_guidelines(session=session)
    return judge, pairs, guidelines.value if guidelines is not None else ""


def audited(comparison_id: int, audit_rate: float) -> bool:
    """Whether a pair the judge labelled still goes to people in its turn (the ``audit_rate`` share).

    A hash of the id, not a draw: the same pairs stay audited whichever worker records them."""
    digest = hashlib.sha256(f"audit:{comparison_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < audit_rate


def record_verdicts(*, session: Session, judge: Judge, job_id: int | None, verdicts: list[Verdict]) -> dict[str, int]:
    """Store what the judge said on each pair, and a vote where it said one thing in both orders.

    A pair the judge already has a verdict on (another job got there first) is skipped. An open
    queue pair it voted on goes to people last, as a machine-labelled one does, except the
    ``audit_rate`` share, which keeps its place so that people keep checking the judge.
    """
    counts = {"voted": 0, "inconsistent": 0, "unparseable": 0, "skipped": 0}
    ids = [v.comparison_id for v in verdicts]
    done: set[int] = set()
    for i in range(0, len(ids), BATCH):
        done |= set(
            session.exec(
                select(JudgeVerdict.comparison_id).where(
                    JudgeVerdict.judge_id == judge.id, col(JudgeVerdict.comparison_id).in_(ids[i : i + BATCH])
                )
            )
        )
    voted: list[int] = []
    for v in verdicts:
        if v.comparison_id in done:
            counts["skipped"] += 1
            continue
        done.add(v.comparison_id)
        outcome = v.outcome
        counts[outcome] += 1
        session.add(
            JudgeVerdict(
                judge_id=stored_id(judge),
                comparison_id=v.comparison_id,
                job_id=job_id,
                verdict=v.verdict,
                swapped_verdict=v.swapped_verdict,
                outcome=outcome,
                tokens=v.tokens,
            )
        )
        if outcome == "voted" and v.verdict is not None:
            session.add(
                Vote(
                    comparison_id=v.comparison_id,
                    rater_id=judge.user_id,
                    choice=Choice(v.verdict),
                    rationale=(v.rationale or None) and v.rationale[:4000],
                    kind=VoteKind.judge,
                    source=judge_source(stored_id(judge)),
                )
            )
            if not audited(v.comparison_id, judge.audit_rate):
                voted.append(v.comparison_id)
    for i in range(0, len(voted), BATCH):
        session.exec(
            sa.update(Comparison)
            .where(
                col(Comparison.id).in_(voted[i : i + BATCH]),
                col(Comparison.status) == ComparisonStatus.open,
                col(Comparison.source) == ComparisonSource.queue,
                col(Comparison.priority) < PRIORITY_MACHINE_LABELLED,
            )
            .values(priority=PRIORITY_MACHINE_LABELLED)
        )
    session.flush()
    return counts
