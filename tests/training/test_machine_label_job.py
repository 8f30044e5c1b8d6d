"""A label job end to end on the tiny model: a reward model trained on people's votes stores what it held
out, is calibrated on exactly those votes, and labels only the pairs it is sure of (``rlhf label --wait``)."""

from __future__ import annotations

import math

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rlhf.jobs.training import execute_run
from rlhf.models import Choice, Comparison, ComparisonStatus, JobStatus, LabelJob, Vote
from rlhf.services.checkpoints import get_checkpoint
from rlhf.services.comparisons import next_for_rater
from rlhf.services.run_data import build_snapshot
from rlhf.services.runs import create_run, get_run
from rlhf.services.vote_kinds import machine_vote
from rlhf_cli.main import app
from tests import factories
from tests.training.test_execute_runs import PLAIN, PLEASE, _setup

pytestmark = pytest.mark.slow
sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)


@sqlite_only
def test_label_job_calibrates_on_the_heldout_votes_and_labels_only_above_the_threshold(
    session, settings, tiny_model_dir
):
    _setup(session, tiny_model_dir, n=48)
    run = create_run(session=session, algorithm="reward", params={"steps": 40, "eval_fraction": 0.5})
    session.commit()
    assert execute_run(run.id, settings) is JobStatus.succeeded
    session.expire_all()
    run = get_run(session=session, run_id=run.id)
    heldout = run.metrics["heldout_comparison_ids"]
    assert len(heldout) == 24 and set(heldout) <= {c.id for c in session.exec(select(Comparison))}
    reward = get_checkpoint(session=session, checkpoint_id=run.output_checkpoint_id)
    assert reward.metrics["heldout_comparison_ids"] == heldout  # the checkpoint names them too

    # New open pairs for people: clear ones (one answer says please), ones the rule cannot tell apart (the
    # model's p for them is whatever training made it, anywhere from ½ to 1), and ones whose two answers are
    # the same text: a margin of 0, p = ½, left to people by any reward model at any threshold.
    clear = [
        (PLEASE[i % 4] + f" #{i}", PLAIN[i % 4] + f" #{i}") if i % 2 else (PLAIN[i % 4], PLEASE[i % 4])
        for i in range(12)
    ]
    unsure = [(PLAIN[i % 4] + " ok", PLAIN[(i + 1) % 4] + " ok") for i in range(4)]
    same = [(PLAIN[i], PLAIN[i]) for i in range(2)]
    new = factories.comparisons(session, clear + unsure + same, target_votes=3, checkpoint_path="org/next")

    bad = CliRunner().invoke(app, ["label", "--reward-model", str(reward.id), "--min-confidence", "1"])
    assert bad.exit_code != 0 and "strictly between 0.5 and 1" in str(bad.exception)
    threshold = 0.8
    result = CliRunner().invoke(
        app, ["label", "--reward-model", str(reward.id), "--min-confidence", str(threshold), "--wait"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "held-out human comparisons" in result.output
    session.expire_all()
    job = session.exec(select(LabelJob)).one()
    assert job.status is JobStatus.succeeded, job.error
    r, cal = job.result, job.result["calibration"]
    assert cal["heldout"] == 24 and cal["accuracy"] >= 0.75 and cal["scale"] > 0
    assert 0 <= cal["ece"] <= 1 and 0 <= cal["brier"] <= 1
    assert r["scored"] == len(new) and r["labelled"] + r["left_for_people"] == len(new)

    # The stored scale is the one used: recompute every pair's probability from the reward model.
    from rlhf.training.scoring import load_reward_model, score_conversations

    model, tok = load_reward_model(reward.path)
    q = [{"role": "user", "content": f"question {i}"} for i in range(len(new))]
    texts = clear + unsure + same
    scores = score_conversations(
        model, tok, [[q[i], {"role": "assistant", "content": t}] for i, pair in enumerate(texts) for t in pair]
    )
    labels = {v.comparison_id: v for v in session.exec(select(Vote).where(machine_vote()))}
    # The threshold decides: the identical answers (margin 0) are never labelled, whatever the run; the clear
    # pairs' margins are many times the calibration's unit on a run that learned the rule (p ≈ 1 on every run
    # measured, on other thread counts and BLAS kernels too), so some are. The unsure ones may go either way.
    assert {c.id for c in new[len(clear) + len(unsure) :]}.isdisjoint(labels)
    assert 0 < len(labels) <= len(new) - len(same)
    for i, comp in enumerate(new):
        margin = scores[2 * i] - scores[2 * i + 1]
        p = 1 / (1 + math.exp(-cal["scale"] * abs(margin)))
        if comp.id in labels:
            vote = labels[comp.id]
            assert vote.label_p == pytest.approx(p, abs=1e-4) and vote.label_p >= threshold
            assert vote.choice is (Choice.a if margin > 0 else Choice.b)
        else:
            assert p < threshold + 1e-4
        stored = session.get(Comparison, comp.id)
        assert stored.status is ComparisonStatus.open and stored.vote_count == 0  # still waiting for people

    # People get the pairs the model was unsure about first.
    rater = factories.user(session, "person")
    first = next_for_rater(session=session, rater=rater)
    assert first.comparison_id not in labels

    # Training on machine labels is a choice the snapshot records; the default stays human.
    human = create_run(session=session, algorithm="dpo")
    machine = create_run(session=session, algorithm="dpo", labels="machine")
    build_snapshot(session=session, run=human)
    build_snapshot(session=session, run=machine)
    assert human.snapshot["labels"] == "human" and human.snapshot["machine_rows"] == 0
    assert machine.snapshot["rows"] == len(labels) == machine.snapshot["machine_rows"]
