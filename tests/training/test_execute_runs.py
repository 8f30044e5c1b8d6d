"""Runs executed as a worker executes them: trainer process, atomic checkpoint, recorded outcome."""

from __future__ import annotations

import json
import threading
import time

import pytest

from rlhf.jobs.training import execute_run
from rlhf.models import CheckpointKind, CheckpointStatus, JobStatus
from rlhf.services.checkpoints import get_checkpoint, register_checkpoint
from rlhf.services.runs import cancel_run, create_run, get_run, run_log
from rlhf.services.simulate import simulate
from tests import factories

pytestmark = pytest.mark.slow
sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)

PLEASE = ["Yes, please sit down.", "Of course, please wait.", "Sure, please come in.", "Please take one."]
PLAIN = ["Sit down.", "Wait here.", "Come in now.", "Take one."]


def _setup(session, tiny_model_dir, n=24):
    base = register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    pairs = [
        (PLEASE[i % 4] + f" {i}", PLAIN[i % 4] + f" {i}") if i % 2 else (PLAIN[i % 4], PLEASE[i % 4]) for i in range(n)
    ]
    factories.comparisons(session, pairs, checkpoint_path="org/sampler")
    simulate(session=session, rule="contains:please")
    session.commit()
    return base


@sqlite_only
def test_reward_model_learns_the_preference_and_reports_heldout_accuracy(session, settings, tiny_model_dir):
    base = _setup(session, tiny_model_dir, n=40)
    run = create_run(session=session, algorithm="reward", params={"steps": 40})
    session.commit()
    assert execute_run(run.id, settings) is JobStatus.succeeded
    session.expire_all()
    run = get_run(session=session, run_id=run.id)
    ckpt = get_checkpoint(session=session, checkpoint_id=run.output_checkpoint_id)
    assert ckpt.kind is CheckpointKind.reward and ckpt.parent_id == base.id
    assert ckpt.status is CheckpointStatus.available
    assert run.metrics["heldout_pairs"] == 8 and run.metrics["heldout_accuracy"] >= 0.75
    assert ckpt.metrics["snapshot_hash"] == run.snapshot_hash
    assert len(run_log(session=session, run_id=run.id)) >= 10  # the curve
    # The checkpoint scores new text as it learned to: in pairs of the votes' kind that it never saw, the
    # polite answer beats the plain one. Runs measured (other seeds, thread counts, BLAS kernels) put each
    # margin between 1.6 and 8.1, far from 0. The word alone is no such test: "Yes, please sit." against
    # "Yes, sit." came out anywhere from -0.001 to 0.28, so an honest run could fail it.
    from rlhf.training.scoring import load_reward_model, score_conversations

    model, tok = load_reward_model(ckpt.path)
    q = [{"role": "user", "content": "May I ask something?"}]
    scores = score_conversations(
        model, tok, [q + [{"role": "assistant", "content": f"{t} 99"}] for pair in zip(PLEASE, PLAIN) for t in pair]
    )
    margins = [scores[2 * i] - scores[2 * i + 1] for i in range(len(PLEASE))]
    assert min(margins) > 0, margins


@sqlite_only
def test_sft_on_a_demonstrations_file(session, settings, tiny_model_dir, tmp_path):
    register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    demos = tmp_path / "demos.jsonl"
    demos.write_text(
        "\n".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"Say hi {i}"},
                        {"role": "assistant", "content": "Hi there, friend."},
                    ]
                }
            )
            for i in range(16)
        )
    )
    run = create_run(session=session, algorithm="sft", params={"data": str(demos), "steps": 5}, serve_on_success=True)
    session.commit()
    assert execute_run(run.id, settings) is JobStatus.succeeded
    session.expire_all()
    run = get_run(session=session, run_id=run.id)
    assert get_checkpoint(session=session, checkpoint_id=run.output_checkpoint_id).status is CheckpointStatus.serving
    assert run.metrics["examples"] == 16


@sqlite_only
def test_a_trainer_error_fails_the_run_with_its_reason_and_leaves_no_checkpoint(session, settings, tiny_model_dir):
    _setup(session, tiny_model_dir, n=8)
    # A real TRL field with a value only TrainingArguments rejects: the run is accepted, the
    # trainer fails when it is built.
    run = create_run(session=session, algorithm="dpo", params={"trl.lr_scheduler_type": "no_such_schedule"})
    session.commit()
    assert execute_run(run.id, settings) is JobStatus.failed
    session.expire_all()
    run = get_run(session=session, run_id=run.id)
    assert "no_such_schedule" in run.error and run.output_checkpoint_id is None
    assert not list(settings.checkpoints_dir.glob("dpo-run*")) and not list(settings.checkpoints_dir.glob(".tmp-*"))
    assert execute_run(run.id, settings) is None  # a finished run is never trained again


@sqlite_only
def test_cancel_stops_a_running_trainer(session, settings, tiny_model_dir):
    _setup(session, tiny_model_dir, n=8)
    run = create_run(session=session, algorithm="dpo", params={"steps": 100000})
    session.commit()
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("status", execute_run(run.id, settings)))
    worker.start()
    deadline = time.monotonic() + 120
    while session.rollback() or not run_log(session=session, run_id=run.id):
        assert time.monotonic() < deadline, "the trainer never reported a step"
        time.sleep(0.5)
    cancel_run(session=session, run_id=run.id)
    session.commit()  # services flush; here the test is the unit of work
    worker.join(90)
    assert outcome["status"] is JobStatus.cancelled
    session.expire_all()
    assert get_run(session=session, run_id=run.id).output_checkpoint_id is None
    assert not list(settings.checkpoints_dir.glob(".tmp-*"))
