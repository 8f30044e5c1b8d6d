"""Training runs: created with a frozen dataset snapshot, claimed once, finished once.

Status moves queued → running → succeeded | failed | cancelled, through the lifecycle
every worker job shares (:mod:`rlhf.services.job_rows`): claiming is one conditional
UPDATE, so two workers handed the same run (a redelivery, a retry) can never both train
it; a run already finished is skipped, and one the reaper failed cannot end otherwise.
What is a run's own: its progress on the heartbeat, its metrics and checkpoint on the
finish, and the cancel a user asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import Algorithm, CheckpointKind, JobStatus, RunLog, SnapshotVote, TrainingRun, stored_id, utcnow
from rlhf.services import job_rows
from rlhf.services.checkpoints import default_base, get_checkpoint, model_ref, unmergeable_reason
from rlhf.services.dataset import Snapshot
from rlhf.services.demonstrations import demonstration_snapshot
from rlhf.services.quality import left_out_raters
from rlhf.services.run_data import freeze_votes
from rlhf.services.snapshots import PreferenceSnapshot, SFTSnapshot
from rlhf.training.params import validate_params
from rlhf.training.progress import RunProgress

ALGORITHMS = [a.value for a in Algorithm]


def parse_algorithm(algorithm: str | Algorithm) -> Algorithm:
    try:
        return Algorithm(algorithm)
    except ValueError:
        raise InvalidInput(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}") from None


def create_run(
    *,
    session: Session,
    algorithm: str | Algorithm,
    base_checkpoint_id: int | str | None = None,
    reward_checkpoint_id: int | str | None = None,
    params: dict[str, Any] | None = None,
    serve_on_success: bool = False,
    created_by: int | None = None,
    ties: str = "drop",
    aggregate: str = "majority",
    exclude_flagged: bool = True,
    labels: str = "human",
) -> TrainingRun:
    """Validate everything a worker would trip over later, freeze the data, and store the run.

    Nothing is queued here: the caller enqueues the id after the commit. ``aggregate`` and
    ``exclude_flagged`` choose how votes become rows, ``labels`` whose votes (people's, machine
    labels or both; see :mod:`rlhf.services.dataset`).
    The doubt in the votes reaches DPO and the reward model per pair (``label_p``), so no
    global ``label_smoothing`` is derived from them: that would count the noise twice.
    """
    algorithm = parse_algorithm(algorithm)
    base = (
        get_checkpoint(session=session, checkpoint_id=base_checkpoint_id)
        if base_checkpoint_id is not None
        else default_base(session=session)
    )
    if base.kind is not CheckpointKind.policy:
        raise InvalidInput(f"base checkpoint {base.id} is a reward model; training starts from a policy")
    if unmergeable_reason(base):
        raise InvalidInput(
            f"checkpoint {base.id} ({base.name}) cannot be the base of a run: "
            f"{unmergeable_reason(base)}; train from its base, checkpoint {base.base_checkpoint_id}"
        )
    model_ref(session=session, checkpoint=base)  # its base must still exist
    reward = None
    if algorithm.needs_reward_model:
        if reward_checkpoint_id is None:
            raise InvalidInput(
                f"{algorithm.value} needs a reward model to train against, and none was named",
                param="reward_model",
                remedy="train_reward_model",
            )
        reward = get_checkpoint(session=session, checkpoint_id=reward_checkpoint_id)
        if reward.kind is not CheckpointKind.reward:
            raise InvalidInput(f"checkpoint {reward.id} ({reward.name}) is not a reward model")
    params = dict(params or {})
    validate_params(algorithm, params)
    if params.get("data") and not Path(params["data"]).is_file():
        raise InvalidInput(f"data file {params['data']} not found (the worker must be able to read it)")
    sft_snapshot: SFTSnapshot | None = None
    if algorithm is Algorithm.sft and not params.get("data"):
        # SFT trains on the demonstrations raters wrote; with none stored yet, on the chosen responses.
        left_out = left_out_raters(session=session, exclude_flagged=exclude_flagged)
        sft_snapshot = demonstration_snapshot(
            session=session, exclude_raters=set(left_out["excluded"]) | set(left_out["flagged"])
        )
    from_votes = sft_snapshot is None and (
        algorithm.needs_votes or (algorithm is Algorithm.sft and not params.get("data"))
    )
    run = TrainingRun(
        algorithm=algorithm,
        base_checkpoint_id=base.id,
        reward_checkpoint_id=reward.id if reward else None,
        params=params,
        snapshot=sft_snapshot.for_storage() if sft_snapshot else {},
        snapshot_hash=sft_snapshot.hash if sft_snapshot else None,
        serve_on_success=serve_on_success,
        created_by=created_by,
    )
    # In a savepoint: a run refused while freezing its votes leaves no row behind, whatever the caller does next.
    with session.begin_nested():
        session.add(run)
        session.flush()
        if from_votes:
            # The votes are frozen here; the worker builds their rows (rlhf.services.run_data).
            frozen = freeze_votes(
                session=session, run=run, ties=ties, aggregate=aggregate, exclude_flagged=exclude_flagged, labels=labels
            )
            run.snapshot = frozen.for_storage()
            session.add(run)
            session.flush()
    return run


def held_vote_ids(*, session: Session, run_id: int) -> list[int]:
    """The votes a run's snapshot holds, in id order."""
    query = select(SnapshotVote.vote_id).where(SnapshotVote.run_id == run_id).order_by(col(SnapshotVote.vote_id))
    return list(session.exec(query))


def run_snapshot(*, session: Session, run: TrainingRun) -> PreferenceSnapshot | SFTSnapshot | None:
    """The run's snapshot with the ids of the votes it holds (read from ``snapshot_vote`` where the
    JSON does not list them); None for runs that train on no stored data."""
    snapshot = Snapshot.of(run)
    if snapshot is None or snapshot.vote_ids or not snapshot.vote_count:
        return snapshot
    return snapshot.with_vote_ids(held_vote_ids(session=session, run_id=stored_id(run)))


def run_summary(run: TrainingRun) -> dict[str, Any]:
    """A run as plain values, for every edge that shows one: its snapshot without the vote ids."""
    snapshot = dict(s.summary()) if (s := Snapshot.of(run)) else {}
    votes = snapshot.pop("votes", 0)
    return {
        "id": run.id,
        "algorithm": run.algorithm,
        "status": run.status,
        "base_checkpoint_id": run.base_checkpoint_id,
        "reward_checkpoint_id": run.reward_checkpoint_id,
        "output_checkpoint_id": run.output_checkpoint_id,
        "params": run.params,
        "progress": run.progress,
        "metrics": run.metrics,
        "error": run.error,
        "snapshot": snapshot,
        "votes": votes,
        "serve_on_success": run.serve_on_success,
        "cancel_requested": run.cancel_requested,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def get_run(*, session: Session, run_id: int) -> TrainingRun:
    return job_rows.get_job(session=session, table=TrainingRun, job_id=run_id)


def list_runs(*, session: Session, limit: int | None = None) -> list[TrainingRun]:
    query = select(TrainingRun).order_by(col(TrainingRun.id).desc())
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))


def claim_run(*, session: Session, run_id: int, worker: str | None = None) -> bool:
    """Commits: atomically moves a queued run to running; False if someone else has it or it is done.

    The claim must be visible to every other worker before this one starts training; it
    records ``worker`` (by default this host) as the run's.
    """
    return job_rows.claim_job(session=session, table=TrainingRun, job_id=run_id, worker=worker)


def heartbeat(*, session: Session, run_id: int, progress: RunProgress | Mapping[str, Any] | None = None) -> bool:
    """Commits: marks the run alive (others must see the heartbeat now); True if its trainer should stop.

    That is when a cancel was requested, or when the run is no longer ``running``: the
    reaper failed it while this worker could not report (a database outage longer than
    the heartbeat timeout), and a failed run must not turn into a checkpoint later.
    ``progress``, when given, replaces the run's stored progress (see :class:`RunProgress`).
    """
    values: dict[str, Any] = {}
    if progress is not None:
        progress = progress if isinstance(progress, RunProgress) else RunProgress.from_dict(progress)
        values["progress"] = progress.to_dict()
    alive = job_rows.beat(session=session, table=TrainingRun, job_id=run_id, values=values)
    row = session.exec(select(TrainingRun.cancel_requested, TrainingRun.status).where(TrainingRun.id == run_id)).first()
    return not alive or row is None or bool(row[0]) or row[1] is not JobStatus.running


def log_step(*, session: Session, run_id: int, step: int, values: dict[str, Any]) -> None:
    session.add(RunLog(run_id=run_id, step=step, values=values))
    session.flush()


def run_log(*, session: Session, run_id: int) -> list[RunLog]:
    return list(session.exec(select(RunLog).where(RunLog.run_id == run_id).order_by(col(RunLog.step), col(RunLog.id))))


def finish_run(
    *,
    session: Session,
    run_id: int,
    status: JobStatus,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
    output_checkpoint_id: int | None = None,
) -> TrainingRun:
    """Ends a queued or running run, ``metrics`` added to those it has; one already ended raises ``Conflict``.

    Called in the transaction that registers its checkpoint, so a run the reaper failed
    meanwhile registers none (:func:`rlhf.services.job_rows.finish_job`).
    """
    run = get_run(session=session, run_id=run_id)
    job_rows.finish_job(
        session=session,
        table=TrainingRun,
        job_id=run_id,
        status=status,
        error=error,
        metrics={**(run.metrics or {}), **metrics} if metrics is not None else None,
        output_checkpoint_id=output_checkpoint_id,
    )
    return get_run(session=session, run_id=run_id)


def cancel_run(*, session: Session, run_id: int) -> TrainingRun:
    """A queued run is cancelled at once; a running one is asked to stop (its worker kills the trainer)."""
    run = get_run(session=session, run_id=run_id)
    if run.status.finished:
        raise Conflict(f"run {run_id} already {run.status.value}")
    if run.status is JobStatus.queued:
        run.status = JobStatus.cancelled
        run.finished_at = utcnow()
        run.error = "cancelled before it started"
    run.cancel_requested = True
    session.add(run)
    session.flush()
    return run


def reap_stale_runs(*, session: Session, timeout: timedelta) -> list[int]:
    """Fail runs whose worker stopped reporting (killed, machine lost), naming the worker; never stuck 'running'."""
    return job_rows.reap_stale_jobs(session=session, table=TrainingRun, timeout=timeout)
