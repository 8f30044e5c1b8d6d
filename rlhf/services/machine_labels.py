"""Machine labels: a reward model labels the open comparisons it is sure about, as a job.

A *label job* names a reward checkpoint and a threshold P in (½, 1). The worker
(:mod:`rlhf.jobs.labelling`) calibrates the reward model's margins on the human votes its
training run held out (:mod:`rlhf.training.calibration`), scores every open queue comparison
not yet machine-labelled, and records a vote of the machine rater on each whose calibrated
probability of the preferred answer is at least P. The web process only stores the job.

Machine votes never count toward a comparison's target, so the pair stays open for people;
raters are handed unlabelled pairs first (see :mod:`rlhf.services.comparisons`). What else
leaves them out is listed in :mod:`rlhf.services.vote_kinds`.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from rlhf.errors import InvalidInput
from rlhf.models import (
    PRIORITY_MACHINE_LABELLED,
    Checkpoint,
    CheckpointKind,
    Choice,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    LabelJob,
    Prompt,
    Response,
    Role,
    TrainingRun,
    User,
    Vote,
    VoteKind,
    stored_id,
)
from rlhf.services import job_rows
from rlhf.services.checkpoints import get_checkpoint
from rlhf.services.users import hash_password
from rlhf.services.vote_kinds import machine_source, machine_vote
from rlhf.training.calibration import MIN_HELDOUT

MACHINE_RATER = "machine"


def check_min_confidence(value: Any) -> float:
    """P as a float in the open interval (0.5, 1); anything else is refused with the reason."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"the minimum confidence must be a number in (0.5, 1), not {value!r}", param="min_confidence"
        ) from None
    if not 0.5 < p < 1.0:
        raise InvalidInput(
            f"the minimum confidence must lie strictly between 0.5 and 1 (got {p:g}): at 0.5 a coin "
            "flip would qualify, and no calibrated probability reaches 1",
            param="min_confidence",
        )
    return p


def calibration_source(*, session: Session, checkpoint: Checkpoint) -> tuple[TrainingRun, list[int]]:
    """The reward model's training run and the comparisons it held out; refuses when there are too few."""
    heldout = (checkpoint.metrics or {}).get("heldout_comparison_ids")
    run = session.get(TrainingRun, checkpoint.run_id) if checkpoint.run_id is not None else None
    if run is None or heldout is None or not run.snapshot:
        raise InvalidInput(
            f"reward model {checkpoint.id} ({checkpoint.name}) has no record of held-out human votes to calibrate on",
            param="reward_model",
            remedy="train_reward_model",
        )
    if len(heldout) < MIN_HELDOUT:
        raise InvalidInput(
            f"reward model {checkpoint.id} held out only {len(heldout)} comparisons; calibration "
            f"needs at least {MIN_HELDOUT}. Train it on more votes, or with a larger eval_fraction"
        )
    return run, list(heldout)


def create_label_job(
    *, session: Session, reward_checkpoint_id: int | str, min_confidence: Any, created_by: int | None = None
) -> LabelJob:
    """Validate and store a label job (it runs in a worker: scoring loads the model)."""
    p = check_min_confidence(min_confidence)
    ckpt = get_checkpoint(session=session, checkpoint_id=reward_checkpoint_id)
    if ckpt.kind is not CheckpointKind.reward:
        raise InvalidInput(f"checkpoint {ckpt.id} ({ckpt.name}) is a policy, not a reward model")
    calibration_source(session=session, checkpoint=ckpt)
    job = LabelJob(reward_checkpoint_id=stored_id(ckpt), min_confidence=p, created_by=created_by)
    session.add(job)
    session.flush()
    return job


def get_label_job(*, session: Session, job_id: int) -> LabelJob:
    return job_rows.get_job(session=session, table=LabelJob, job_id=job_id)


def queued_label_ids(*, session: Session) -> list[int]:
    return job_rows.queued_job_ids(session=session, table=LabelJob)


def machine_rater(*, session: Session) -> User:
    """The machine rater: inactive, role ``machine``, a password nobody knows (it can never log in)."""
    user = session.exec(select(User).where(User.name == MACHINE_RATER)).first()
    if user is None:
        user = User(
            name=MACHINE_RATER, role=Role.machine, active=False, password_hash=hash_password(secrets.token_urlsafe(24))
        )
        session.add(user)
        session.flush()
    return user


def unlabelled_open(*, session: Session) -> list[tuple[int, list[dict], str, str]]:
    """(id, prompt messages, text a, text b) of open queue comparisons, not gold, with no machine label yet."""
    ra, rb = aliased(Response), aliased(Response)
    labelled = sa.exists().where(col(Vote.comparison_id) == Comparison.id, machine_vote())
    rows = session.exec(
        select(col(Comparison.id), col(Prompt.messages), col(ra.text), col(rb.text))
        .join(Prompt, col(Prompt.id) == Comparison.prompt_id)
        .join(ra, col(ra.id) == Comparison.response_a_id)
        .join(rb, col(rb.id) == Comparison.response_b_id)
        .where(
            Comparison.status == ComparisonStatus.open,
            ~col(Comparison.is_gold),
            Comparison.source == ComparisonSource.queue,
            ~labelled,
        )
        .order_by(col(Comparison.id))
    ).all()
    # A key is never NULL: the test only narrows the id's type.
    return [(cid, messages, a, b) for cid, messages, a, b in rows if cid is not None]


def record_machine_labels(
    *, session: Session, reward_checkpoint_id: int, labels: list[tuple[int, Choice, float]]
) -> int:
    """Store (comparison id, choice, calibrated p) as machine votes; returns how many were new.

    The comparison's vote count and status are left alone: a machine label is not a vote
    toward its target. A pair that closed or was labelled since it was scored is skipped.
    """
    rater = machine_rater(session=session)
    ids = [c for c, _, _ in labels]
    still_open: set[int | None] = set()  # as selected: the id column reads as optional
    done: set[int] = set()
    for i in range(0, len(ids), 500):  # bounded IN lists, whatever the number of pairs
        part = ids[i : i + 500]
        still_open |= set(
            session.exec(
                select(col(Comparison.id)).where(
                    col(Comparison.id).in_(part), Comparison.status == ComparisonStatus.open
                )
            )
        )
        done |= set(
            session.exec(select(Vote.comparison_id).where(col(Vote.comparison_id).in_(part), Vote.rater_id == rater.id))
        )
    new: list[int] = []
    for comparison_id, choice, p in labels:
        if comparison_id in still_open and comparison_id not in done:
            session.add(
                Vote(
                    comparison_id=comparison_id,
                    rater_id=stored_id(rater),
                    choice=choice,
                    label_p=round(p, 6),
                    kind=VoteKind.machine,
                    source=machine_source(reward_checkpoint_id),
                )
            )
            new.append(comparison_id)
    # A labelled pair goes to people last.
    for i in range(0, len(new), 500):
        session.exec(
            sa.update(Comparison)
            .where(col(Comparison.id).in_(new[i : i + 500]))
            .values(priority=PRIORITY_MACHINE_LABELLED)
        )
    session.flush()
    return len(new)
