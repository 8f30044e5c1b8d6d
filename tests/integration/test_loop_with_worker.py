"""Two whole rounds of the loop through the CLI, trained by a real Celery worker on Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest
import sqlalchemy as sa

from rlhf.modeling.sample_stats import evaluate_policy, heldout_prompts
from rlhf.modeling.tiny import PROMPTS_PATH
from tests.conftest import _truncate_all
from tests.integration.conftest import Env, start_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WORD = "please"


@pytest.fixture(scope="module")
def loop_env(postgres_db, broker_url, tmp_path_factory, tiny_model_dir):
    _truncate_all(postgres_db)
    data_dir = tmp_path_factory.mktemp("loop") / "data"
    data_dir.mkdir()
    env = Env(data_dir, postgres_db, broker_url)
    env.rlhf("init")  # migrations already applied: must be a no-op apart from the base model
    worker = start_worker(env, data_dir.parent / "worker.log")
    try:
        yield env
    finally:
        stop_worker(worker)
        print((data_dir.parent / "worker.log").read_text()[-3000:])


def _json(env, *args):
    return json.loads(env.rlhf(*args, "--json").stdout)


def test_two_rounds_raise_the_marker_rate(loop_env, tiny_model_dir):
    env = loop_env
    # The tiny model serves before the stand-in base retires: the last serving policy cannot go.
    base_id = env.rlhf("checkpoints", "add", str(tiny_model_dir), "--name", "tiny", "--serve").stdout.strip()
    env.rlhf("checkpoints", "retire", "base")
    assert "imported 120 prompts" in env.rlhf("prompts", "import", str(PROMPTS_PATH)).stdout

    for round_no in (1, 2):
        out = env.rlhf("generate", "--limit", "48", "--wait").stdout
        assert "opened" in out
        votes = env.rlhf("simulate", "--rule", f"contains:{WORD}").stdout
        assert "recorded" in votes
        run_id = env.rlhf("train", "dpo", "--wait", "--serve").stdout.strip().splitlines()[0]
        run = _json(env, "runs", "show", run_id)
        assert run["status"] == "succeeded", run["error"]
        assert run["snapshot"]["hash"] and run["votes"] > 0
        assert run["log"], "the worker copies training steps into the run"

    checkpoints = _json(env, "checkpoints", "list")
    newest = checkpoints[-1]
    assert newest["status"] == "serving" and newest["kind"] == "policy"
    assert newest["parent_id"] == checkpoints[-2]["id"] and checkpoints[-2]["parent_id"] == int(base_id)

    prompts = heldout_prompts(16)
    before = evaluate_policy(str(tiny_model_dir), prompts, word=WORD, n=8)
    after = evaluate_policy(newest["path"], prompts, word=WORD, n=8)
    print(f"marker rate: base {before.marker_rate:.2f} -> round 2 {after.marker_rate:.2f}")
    assert after.marker_rate >= before.marker_rate + 0.3
    assert after.finished_rate > 0.8  # still ends its answers


def _trainer_process(run_id: int, timeout: float = 120) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "rlhf.training.child" in cmd and f"run-{run_id}/" in cmd:
                return p
        time.sleep(0.5)
    raise AssertionError(f"no trainer process for run {run_id}")


def test_killed_trainer_fails_the_run_and_the_worker_goes_on(loop_env):
    env = loop_env
    run_id = int(env.rlhf("train", "dpo", "--steps", "5000").stdout.strip())
    trainer = _trainer_process(run_id)
    deadline = time.monotonic() + 120
    while not (env.data_dir / "runs" / f"run-{run_id}" / "progress.jsonl").exists():
        assert time.monotonic() < deadline, "trainer never logged a step"
        time.sleep(0.5)
    trainer.send_signal(signal.SIGKILL)

    proc = env.rlhf("runs", "show", str(run_id), "--json")
    deadline = time.monotonic() + 60
    while json.loads(proc.stdout)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(1)
        proc = env.rlhf("runs", "show", str(run_id), "--json")
    run = json.loads(proc.stdout)
    assert run["status"] == "failed" and "SIGKILL" in run["error"]
    assert run["output_checkpoint_id"] is None
    engine = sa.create_engine(env.vars["RLHF_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM checkpoint WHERE run_id = :r"), {"r": run_id}).scalar() == 0
    engine.dispose()
    ckpt_dir = env.data_dir / "checkpoints"
    assert not (ckpt_dir / f"dpo-run{run_id}").exists()
    assert not [p for p in os.listdir(ckpt_dir) if p.startswith(f".tmp-run{run_id}-")], "half checkpoint left behind"

    # The same worker takes the next job.
    next_run = env.rlhf("train", "dpo", "--steps", "2", "--wait").stdout.strip().splitlines()[0]
    assert _json(env, "runs", "show", next_run)["status"] == "succeeded"


def _decisive_votes(env) -> int:
    stats = _json(env, "stats")
    return stats["votes"] - stats["votes_by_choice"].get("tie", 0)


def test_a_label_job_runs_on_the_worker(loop_env, tiny_model_dir):
    """``rlhf label --wait`` with a broker: the Celery worker takes ``rlhf.label``, calibrates the reward
    model on the votes its run held out and labels the open pairs it is sure of."""
    env = loop_env
    if _json(env, "stats")["votes"] == 0:  # alone, this test sets up its own policies and prompts
        env.rlhf("checkpoints", "add", str(tiny_model_dir), "--name", "tiny-for-labels", "--serve")
        env.rlhf("checkpoints", "retire", "base")  # the same weights: its answers would equal the tiny model's
        env.rlhf("prompts", "import", str(PROMPTS_PATH))
    # Calibration needs 20 held-out decisive pairs; the rounds above leave many ties (the model seldom says
    # the word), so votes by length are added until half the decisive ones are comfortably enough.
    for _ in range(3):
        if _decisive_votes(env) >= 60:
            break
        env.rlhf("generate", "--limit", "64", "--wait")
        env.rlhf("simulate", "--rule", "shorter")
    assert _decisive_votes(env) >= 60
    run_id = (
        env.rlhf("train", "reward", "--steps", "20", "--set", "eval_fraction=0.5", "--wait")
        .stdout.strip()
        .splitlines()[0]
    )
    run = _json(env, "runs", "show", run_id)
    assert run["status"] == "succeeded", run["error"]
    assert "opened" in env.rlhf("generate", "--limit", "16", "--wait").stdout

    out = env.rlhf(
        "label", "--reward-model", str(run["output_checkpoint_id"]), "--min-confidence", "0.7", "--wait", "--json"
    ).stdout
    assert out.startswith("label job ")
    result = json.loads(out[out.index("{") :])
    assert result["reward_checkpoint_id"] == run["output_checkpoint_id"] and result["scored"] > 0
    assert result["labelled"] + result["left_for_people"] == result["scored"]
    assert result["calibration"]["heldout"] >= 20
    log = (env.data_dir.parent / "worker.log").read_text()
    assert "Task rlhf.label[" in log, "the label job did not go through the Celery worker"


def test_merge_jobs_run_on_the_worker(loop_env, tiny_model_dir, tmp_path):
    """Serving a LoRA checkpoint sends its merge job to the Celery worker, and ``rlhf checkpoints merge --wait``
    follows the worker's merge to the new checkpoint's id."""
    from rlhf.modeling.adapters import name_base
    from tests.adapters import make_adapter

    env = loop_env
    base_id = int(env.rlhf("checkpoints", "add", str(tiny_model_dir), "--name", "tiny-for-merges").stdout.strip())
    adapter = make_adapter(tiny_model_dir, tmp_path / "lora")
    name_base(adapter, base_checkpoint_id=base_id, base_name="tiny-for-merges")
    added = env.rlhf("checkpoints", "add", str(adapter), "--name", "lora-on-worker", "--serve")
    lora_id = int(added.stdout.strip())  # stdout is the id alone; the merge note goes to stderr
    assert "is making its copy for the inference engine" in added.stderr

    out = env.rlhf("checkpoints", "merge", "lora-on-worker", "--wait").stdout.strip().splitlines()
    assert out[0].startswith("merge job ")
    new = next(c for c in _json(env, "checkpoints", "list") if c["id"] == int(out[-1]))
    assert (new["name"], new["parent_id"], new["adapter"]) == ("lora-on-worker-merged", lora_id, None)
    engine = sa.create_engine(env.vars["RLHF_DATABASE_URL"])
    deadline = time.monotonic() + 120
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            statuses = dict(
                conn.execute(
                    sa.text("SELECT target, status FROM mergejob WHERE checkpoint_id = :c"), {"c": lora_id}
                ).all()
            )
            if statuses.get("serving") not in ("queued", "running"):
                break
            time.sleep(0.5)
    engine.dispose()
    assert statuses == {"serving": "succeeded", "checkpoint": "succeeded"}
    assert (env.data_dir / "merged" / f"checkpoint-{lora_id}" / "config.json").is_file()
    log = (env.data_dir.parent / "worker.log").read_text()
    assert log.count("Task rlhf.merge[") >= 2, "the merge jobs did not go through the Celery worker"
