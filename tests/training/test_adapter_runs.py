"""Adapter runs as a worker executes them: the checkpoint is the adapter, and every later use loads it over its base."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rlhf.errors import Conflict, InvalidInput
from rlhf.jobs.generation import execute_generation_job
from rlhf.jobs.training import execute_run
from rlhf.models import CheckpointKind, CheckpointStatus, JobStatus, MergeJob, MergeTarget, Response
from rlhf.services import arena
from rlhf.services.checkpoints import get_checkpoint, merged_dir, model_ref
from rlhf.services.generation_jobs import create_generation_job
from rlhf.services.merges import create_merge_job
from rlhf.services.runs import create_run, get_run
from tests import factories
from tests.adapters import folder_bytes
from tests.training.test_execute_runs import _setup

pytestmark = pytest.mark.slow
sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)


def _train(session, settings, algorithm, **kw):
    run = create_run(session=session, algorithm=algorithm, **kw)
    session.commit()
    assert execute_run(run.id, settings) is JobStatus.succeeded, get_run(session=session, run_id=run.id).error
    session.expire_all()
    return get_checkpoint(session=session, checkpoint_id=get_run(session=session, run_id=run.id).output_checkpoint_id)


def _responses(session, settings, ckpt_id):
    job = create_generation_job(session=session, limit=2)
    session.commit()
    assert execute_generation_job(job.id, settings) is JobStatus.succeeded
    session.expire_all()
    return [r.text for r in session.query(Response).filter(Response.checkpoint_id == ckpt_id)]


@sqlite_only
def test_a_lora_round_stores_the_adapter_and_the_next_round_trains_from_it(session, settings, tiny_model_dir):
    base = _setup(session, tiny_model_dir, n=8)
    first = _train(session, settings, "dpo", params={"steps": 3, "use_lora": "true"}, serve_on_success=True)
    assert (first.adapter, first.base_checkpoint_id, first.parent_id) == ("lora", base.id, base.id)
    assert Path(first.path, "adapter_model.safetensors").is_file() and not Path(first.path, "config.json").exists()
    assert folder_bytes(Path(first.path)) < folder_bytes(tiny_model_dir)
    # It serves, so the arena's engine needs full weights: the worker ran its merge job already, not a battle.
    assert first.status is CheckpointStatus.serving and (merged_dir(settings, first) / "config.json").is_file()
    merges = [(j.checkpoint_id, j.target, j.status) for j in session.query(MergeJob)]
    assert merges == [(first.id, MergeTarget.serving, JobStatus.succeeded)]
    factories.comparisons(session, [("x", "y")], checkpoint_path="org/other")  # a prompt to generate for
    assert _responses(session, settings, first.id)  # a generation job samples it over its base

    # The next round starts from the adapter checkpoint: TRL trains on its merged copy, made once.
    second = _train(session, settings, "dpo", base_checkpoint_id=first.id, params={"steps": 2, "peft": "lora"})
    assert (second.adapter, second.base_checkpoint_id) == ("lora", first.id)
    assert not merged_dir(settings, second).exists()  # not serving: no full copy until something needs one
    ref = model_ref(session=session, checkpoint=second)
    assert ref.base.path == first.path and ref.base.base.path == base.path  # adapter over adapter over base

    # A LoRA reward model loads over its base for scoring too.
    reward = _train(
        session,
        settings,
        "reward",
        base_checkpoint_id=base.id,
        params={"steps": 5, "peft": "lora", "eval_fraction": 0.0},
    )
    assert reward.kind is CheckpointKind.reward and reward.adapter == "lora"
    assert not merged_dir(settings, reward).exists()
    from rlhf.training.scoring import load_reward_model, score_conversations

    conversation = [[{"role": "user", "content": "Sit?"}, {"role": "assistant", "content": "Yes."}]]
    scores = [
        score_conversations(*load_reward_model(model_ref(session=session, checkpoint=reward)), conversation)
        for _ in range(2)
    ]
    assert scores[0] == scores[1]  # the trained score head comes with the adapter (a fresh one would be random)


@sqlite_only
def test_a_prompt_tuning_run_trains_samples_in_the_worker_and_sits_out_the_arena(session, settings, tiny_model_dir):
    base = _setup(session, tiny_model_dir, n=8)
    pt = _train(
        session,
        settings,
        "dpo",
        params={"steps": 3, "peft": "prompt_tuning", "num_virtual_tokens": 4},
        serve_on_success=True,
    )
    assert (pt.adapter, pt.base_checkpoint_id) == ("prompt_tuning", base.id)
    factories.comparisons(session, [("x", "y")], checkpoint_path="org/other")
    assert _responses(session, settings, pt.id)

    with pytest.raises(Conflict, match="cannot be merged: .*virtual input tokens"):
        create_merge_job(session=session, checkpoint_id=pt.id)
    assert session.query(MergeJob).count() == 0  # serving it queued no merge either
    with pytest.raises(InvalidInput, match="cannot be the base of a run"):
        create_run(session=session, algorithm="dpo", base_checkpoint_id=pt.id)
    # Though it is the newest serving policy, a run with no base named trains from one it can start from.
    assert create_run(session=session, algorithm="dpo").base_checkpoint_id == base.id

    settings.arena_battles_per_minute = 1000
    rater = factories.user(session, "r")
    usable, skipped = arena.arena_checkpoints(session=session, settings=settings)
    assert pt.id not in {c.id for c in usable} and [c.id for c, _ in skipped] == [pt.id]
    assert "no OpenAI-compatible engine serves a prompt-tuning adapter" in skipped[0][1]
    plan = arena.plan_battle(
        session=session,
        rater=rater,
        messages=[{"role": "user", "content": "Hi"}],
        settings=settings,
        rng=random.Random(0),
    )
    assert pt.id not in (plan.a.checkpoint_id, plan.b.checkpoint_id)


@sqlite_only
def test_sft_trains_a_prompt_tuning_adapter(session, settings, tiny_model_dir, tmp_path):
    import json

    _setup(session, tiny_model_dir, n=4)
    demos = tmp_path / "demos.jsonl"
    demos.write_text(
        "\n".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"Say hi {i}"},
                        {"role": "assistant", "content": "Hi there."},
                    ]
                }
            )
            for i in range(8)
        )
    )
    ckpt = _train(session, settings, "sft", params={"data": str(demos), "steps": 3, "peft": "prompt_tuning"})
    assert ckpt.adapter == "prompt_tuning"
    from rlhf.modeling.sampling import sample_checkpoint

    assert sample_checkpoint(model_ref(session=session, checkpoint=ckpt), [[{"role": "user", "content": "Hi"}]])


def test_a_lora_round_on_a_35m_model_stores_under_a_tenth_of_a_full_one(tiny_model_dir, tmp_path):
    from bench.adapter_disk import one_round
    from bench.ppo_vs_trl import build_large

    large = tmp_path / "large"
    build_large(tiny_model_dir, large)
    full, lora = one_round(large, tmp_path / "full", "none"), one_round(large, tmp_path / "lora", "lora")
    assert lora < 0.10 * full, (lora, full)
    assert Path(tmp_path / "lora", "adapter_config.json").is_file()
    # In fp32 the adapter over its base samples exactly like its merged form: same seed, same tokens.
    from rlhf.modeling.adapters import ModelRef, merge_into
    from rlhf.modeling.sampling import SamplingParams, sample_checkpoint

    ref = ModelRef(path=str(tmp_path / "lora"), base=ModelRef(path=str(large)), adapter="lora")
    merged = merge_into(ref, tmp_path / "merged")
    prompts = [[{"role": "user", "content": "Tell me about cats."}], [{"role": "user", "content": "Where is Lisbon?"}]]
    params = SamplingParams(seed=3, max_new_tokens=12)
    texts = [
        [[s.text for s in per] for per in sample_checkpoint(model, prompts, n=2, params=params)]
        for model in (ref, str(merged))
    ]
    assert texts[0] == texts[1]
