"""Executing a label job: calibrate the reward model on its held-out votes, label the pairs it is sure of.

1. The held-out rows: the reward model's training run froze its data (a snapshot) and
   named the comparisons it held out; those rows' people's votes (never machine labels)
   are the calibration set, which the model never trained on.
2. The reward model scores both answers of every held-out row and of every open queue
   comparison without a machine label (no session is open while it does).
3. The margin's scale is fit on the held-out rows (:mod:`rlhf.training.calibration`); a
   pair is labelled when σ(scale·|margin|) ≥ the job's ``min_confidence``, for the answer
   with the higher reward. Too few held-out rows fail the job with the reason.

The result holds the reliability figures (held-out count, accuracy, ECE, Brier, scale)
and how many pairs were labelled and left to people.
"""

from __future__ import annotations

import logging

from rlhf import db
from rlhf.errors import RLHFError
from rlhf.jobs.heartbeat import run_job
from rlhf.models import Choice, JobStatus, LabelJob
from rlhf.services import job_rows
from rlhf.services import machine_labels as labels_svc
from rlhf.services.checkpoints import get_checkpoint, model_ref
from rlhf.services.dataset import snapshot_rows
from rlhf.services.runs import run_snapshot
from rlhf.services.snapshots import PreferenceSnapshot
from rlhf.settings import Settings, get_settings
from rlhf.training.calibration import calibrate
from rlhf.training.scoring import load_reward_model, score_conversations

log = logging.getLogger(__name__)


def heldout_rows(session, checkpoint) -> list[dict]:
    """The people's rows the reward model's run held out (the calibration set)."""
    run, heldout = labels_svc.calibration_source(session=session, checkpoint=checkpoint)
    held = set(heldout)
    snapshot = run_snapshot(session=session, run=run)
    if not isinstance(snapshot, PreferenceSnapshot):  # calibration_source picks reward runs, which train on votes
        raise RLHFError(f"run {run.id} holds no preference rows to calibrate on")
    return [
        r
        for r in snapshot_rows(session=session, snapshot=snapshot)
        if r.get("comparison_id") in held and r.get("label_source") is None  # people's rows only
    ]


def label_pairs(reward_path, calibration_rows: list[dict], candidates, min_confidence: float):
    """(calibration, [(comparison id, choice, p) to label], number scored): the model's part, no database."""
    model, tokenizer = load_reward_model(reward_path)
    chosen = score_conversations(model, tokenizer, [r["prompt"] + r["chosen"] for r in calibration_rows])
    rejected = score_conversations(model, tokenizer, [r["prompt"] + r["rejected"] for r in calibration_rows])
    calibration = calibrate(
        [c - r for c, r in zip(chosen, rejected)], [float(r.get("label_p", 1.0)) for r in calibration_rows]
    )
    conversations = []
    for _, messages, a, b in candidates:
        conversations += [
            messages + [{"role": "assistant", "content": a}],
            messages + [{"role": "assistant", "content": b}],
        ]
    scores = score_conversations(model, tokenizer, conversations) if conversations else []
    picked = []
    for i, (comparison_id, *_rest) in enumerate(candidates):
        margin = scores[2 * i] - scores[2 * i + 1]
        p = calibration.probability(margin)
        if margin != 0 and p >= min_confidence:
            picked.append((comparison_id, Choice.a if margin > 0 else Choice.b, p))
    return calibration, picked


def execute_label_job(job_id: int, settings: Settings | None = None) -> JobStatus | None:
    return run_job(LabelJob, job_id, settings or get_settings(), lambda engine: _label(engine, job_id))


def _label(engine, job_id: int) -> dict:
    """Calibrate, score and record: the job's work, between its claim and its end."""
    with db.session_scope(engine) as session:
        job = labels_svc.get_label_job(session=session, job_id=job_id)
        reward_id, min_confidence = job.reward_checkpoint_id, job.min_confidence
        ckpt = get_checkpoint(session=session, checkpoint_id=reward_id)
        reward_path = model_ref(session=session, checkpoint=ckpt)  # a LoRA reward model loads over its base
        calibration_rows = heldout_rows(session, ckpt)
        candidates = labels_svc.unlabelled_open(session=session)
    log.info("label job %s: %d held-out rows, %d open pairs", job_id, len(calibration_rows), len(candidates))
    calibration, picked = label_pairs(reward_path, calibration_rows, candidates, min_confidence)
    with db.session_scope(engine) as session:
        labelled = labels_svc.record_machine_labels(session=session, reward_checkpoint_id=reward_id, labels=picked)
        probs = [p for _, _, p in picked]
        result = {
            "reward_checkpoint_id": reward_id,
            "min_confidence": min_confidence,
            "calibration": {"estimator": "temperature scaling on held-out margins", **calibration.as_dict()},
            "scored": len(candidates),
            "labelled": labelled,
            "left_for_people": len(candidates) - labelled,
            "mean_label_p": round(sum(probs) / len(probs), 6) if probs else None,
        }
        # In the recording transaction: a job the reaper failed meanwhile leaves no labels.
        job_rows.finish_job(session=session, table=LabelJob, job_id=job_id, status=JobStatus.succeeded, result=result)
    return result
