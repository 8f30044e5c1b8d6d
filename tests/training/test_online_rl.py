"""Online RL against a reward model learned from (simulated) votes: PPO, RLOO and GRPO each
raise the reward and the preferred word's rate over the base policy on held-out prompts."""

from __future__ import annotations

import math

import pytest

from rlhf import db
from rlhf.jobs.generation import execute_generation_job
from rlhf.jobs.training import execute_run
from rlhf.modeling.sample_stats import evaluate_policy, heldout_prompts
from rlhf.modeling.tiny import PROMPTS_PATH
from rlhf.models import JobStatus
from rlhf.services.checkpoints import get_checkpoint, register_checkpoint
from rlhf.services.generation_jobs import create_generation_job
from rlhf.services.prompts import import_file
from rlhf.services.runs import create_run, get_run, run_log
from rlhf.services.simulate import simulate
from rlhf.settings import reset_settings_cache
from tests import factories

pytestmark = pytest.mark.slow
WORD = "please"
# Per algorithm: enough steps to move the tiny model, few enough for CI.
PARAMS = {"grpo": {"steps": 20}, "rloo": {"steps": 20}, "ppo": {"steps": 10, "learning_rate": 2e-4}}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    """A database with the tiny model serving, votes from a `contains:please` rater, and a reward model."""
    root = tmp_path_factory.mktemp("online")
    mp = pytest.MonkeyPatch()
    settings, engine = factories.local_world(mp, root)
    with db.session_scope(engine) as s:
        base = register_checkpoint(session=s, path=str(tiny_model_dir), name="tiny", serve=True)
        import_file(session=s, path=PROMPTS_PATH)
        job = create_generation_job(session=s, per_checkpoint=4, limit=80)
    assert execute_generation_job(job.id, settings) is JobStatus.succeeded
    with db.session_scope(engine) as s:
        simulate(session=s, rule=f"contains:{WORD}")
        run = create_run(session=s, algorithm="reward", params={"steps": 60})
    assert execute_run(run.id, settings) is JobStatus.succeeded
    with db.session_scope(engine) as s:
        run = get_run(session=s, run_id=run.id)
    yield {"settings": settings, "engine": engine, "base": base, "reward_run": run}
    mp.undo()
    reset_settings_cache()


def test_reward_model_from_votes_is_accurate(world):
    assert world["reward_run"].metrics["heldout_accuracy"] >= 0.75


@pytest.fixture(scope="module")
def base_eval(world):
    return evaluate_policy(world["base"].path, heldout_prompts(16), word=WORD, n=4)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_online_rl_raises_reward_and_marker_rate(world, base_eval, algorithm):
    settings, engine = world["settings"], world["engine"]
    with db.session_scope(engine) as s:
        run = create_run(
            session=s,
            algorithm=algorithm,
            base_checkpoint_id=world["base"].id,
            reward_checkpoint_id=world["reward_run"].output_checkpoint_id,
            params=PARAMS[algorithm],
        )
    assert execute_run(run.id, settings) is JobStatus.succeeded
    with db.session_scope(engine) as s:
        run = get_run(session=s, run_id=run.id)
        ckpt = get_checkpoint(session=s, checkpoint_id=run.output_checkpoint_id)
    m = run.metrics
    print(algorithm, {k: v for k, v in m.items() if k.startswith("eval/")})
    assert m["eval/reward"] > m["eval/reward_parent"], "the policy's mean reward did not rise over its parent's"
    assert math.isfinite(m["eval/kl_to_parent"])
    after = evaluate_policy(ckpt.path, heldout_prompts(16), word=WORD, n=4)
    print(f"{algorithm}: '{WORD}' rate {base_eval.marker_rate:.2f} -> {after.marker_rate:.2f}")
    assert after.marker_rate >= base_eval.marker_rate + 0.15
    if algorithm == "ppo":
        assert math.isfinite(m["kl_mean"])
        # Within each update the value model fits that batch's returns: its loss falls epoch over epoch.
        with db.session_scope(engine) as s:
            log = [e.values for e in run_log(session=s, run_id=run.id) if "value_loss_first_epoch" in e.values]
        assert len(log) == PARAMS["ppo"]["steps"]
        assert sum(e["value_loss_last_epoch"] for e in log) < sum(e["value_loss_first_epoch"] for e in log)
