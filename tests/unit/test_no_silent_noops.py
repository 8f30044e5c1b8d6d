"""Every parameter we accept does something: changing it changes the trainer's config, its loss or its output.

Parametrised over the registry itself, so a new parameter fails here until it is shown
to act (or refused where it cannot). A refusal counts as an effect: the user is told.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

from rlhf.errors import RLHFError
from rlhf.training.params import PARAMS_BY_ALGORITHM, build_params
from rlhf.training.trl_fields import installed_fields, shipped_fields

pytestmark = pytest.mark.slow

CASES = [(alg, f.name) for alg, cls in PARAMS_BY_ALGORITHM.items() for f in dataclasses.fields(cls)]
# The value each parameter is changed to (else: a bool flipped, a number moved, a list changed).
CHANGED = {
    "value_learning_rate": 0.01,
    "missing_eos_penalty": None,
    "value_model_init": "policy",
    "lora_target_modules": ["q_proj"],
    "accelerate_config": "deploy/accelerate/other.yaml",
    "loss_type": ["sigmoid"],
    "loss_weights": [1.0, 0.5],
    "max_grad_norm": 1e-3,
    "cliprange": 1e-3,
    "cliprange_value": 1e-3,
    "eval_every": 1,
    "logging_steps": 2,
    "eval_fraction": 0.5,
    "num_generations": 2,
    "gamma": 0.5,
    "lam": 0.5,
    "peft": "lora",
    "strength_margins": [0.0, 1.0, 3.0],
    "strength_offsets": [0.0, 1.0, 3.0],
    "ranking_weight": "pair",
    # Per algorithm where the generic change would be refused or is the base already.
    ("rloo", "batch_size"): 4,
    ("grpo", "batch_size"): 4,
    ("rloo", "max_prompt_length"): 8,
    ("grpo", "max_prompt_length"): 8,
    ("ppo", "max_prompt_length"): 4,
}
# Where a parameter only acts together with another, the context it is changed in.
CONTEXT = {
    "lora_r": {"use_lora": True},
    "lora_alpha": {"use_lora": True},
    "lora_dropout": {"use_lora": True},
    "lora_target_modules": {"use_lora": True},
    "accelerate_config": {"num_processes": 2},
    ("ppo", "accelerate_config"): {},  # PPO refuses num_processes > 1 whatever else is set
    # Acts on DPO's and SFT's prompt-tuning adapter; refused elsewhere (and without prompt tuning).
    ("dpo", "num_virtual_tokens"): {"peft": "prompt_tuning"},
    ("sft", "num_virtual_tokens"): {"peft": "prompt_tuning"},
    # A vote's strength levels act only with use_strength (refused without it).
    "strength_margins": {"use_strength": True},
    "strength_offsets": {"use_strength": True},
}
# Shaping what a run trains on, not the trainer: shown by test_job_level_parameters_change_the_data below.
JOB_LEVEL = {("sft", "data"), ("rloo", "prompt_tag"), ("grpo", "prompt_tag"), ("ppo", "prompt_tag")}


def _changed(alg, cls, name):
    if (alg, name) in CHANGED:
        return CHANGED[(alg, name)]
    if name in CHANGED:
        return CHANGED[name]
    default = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = default.default if default.default is not dataclasses.MISSING else default.default_factory()
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 if value else 0.1
    raise AssertionError(f"say in CHANGED what {name} should be changed to")


def _trl_config(alg, params, trl, tmp_path):
    if alg == "dpo":
        from rlhf.training.dpo import dpo_config

        return dpo_config(params, tmp_path, trl)
    if alg == "reward":
        from rlhf.training.reward import reward_config

        return reward_config(params, tmp_path, trl)
    if alg == "sft":
        from rlhf.training.sft import sft_config

        return sft_config(params, tmp_path, trl)
    from rlhf.training.online import online_config

    return online_config(alg, params, tmp_path, trl)


ROWS = [
    {
        "prompt": [{"role": "user", "content": "hi " * 40}],
        "chosen": [{"role": "assistant", "content": "x"}],
        "rejected": [{"role": "assistant", "content": "y"}],
        "comparison_id": i,
        "label_p": 0.7,
        "strength": 1 + i % 3,
        # The first three are the pairs of one ranking of three answers.
        **({"ranking_id": 1, "ranking_size": 3} if i < 3 else {}),
    }
    for i in range(10)
]


def _observe(alg, given, tmp_path, models):
    """Everything a parameter may act on, short of training (PPO: two real updates on tiny models)."""
    from rlhf.jobs.training import trainer_command
    from rlhf.training.child import evaluate
    from rlhf.training.reward import split_rows
    from rlhf.training.soft_targets import training_targets
    from rlhf.training.spec import TrainerSpec
    from rlhf.training.trl_setup import peft_config

    try:
        params, trl = build_params(alg, given)
    except RLHFError as exc:
        return f"refused: {exc}"
    spec = TrainerSpec(
        run_id=1,
        algorithm=alg,
        base="b",
        reward_model=None,
        params=given,
        data="d",
        output_dir="o",
        work_dir="w",
        progress="p",
        result="r",
        stop=str(tmp_path / "STOP"),
        eval_prompts=[[{"role": "user", "content": "q"}]],
    )
    seen = {"command": trainer_command(Path("spec.json"), spec), "peft": repr(peft_config(params))}
    calls = []
    import rlhf.training.parent_comparison as pc

    real, pc.compare_with_parent = pc.compare_with_parent, lambda **kw: calls.append(kw) or {}
    try:
        evaluate(spec, {})
    finally:
        pc.compare_with_parent = real
    seen["evaluation"] = repr(calls)
    if hasattr(params, "soft_labels"):
        seen["targets"] = training_targets(ROWS, soft_labels=params.soft_labels, label_smoothing=params.label_smoothing)
    if getattr(params, "use_strength", False):
        from rlhf.training.strength import strength_shifts

        levels = params.strength_margins if alg == "reward" else params.strength_offsets
        seen["strength_shifts"] = strength_shifts(ROWS, levels)
    if hasattr(params, "ranking_weight"):
        from rlhf.training.ranking_weights import ranking_weights

        seen["ranking_weights"] = ranking_weights(ROWS, mode=params.ranking_weight, algorithm=alg)
    if hasattr(params, "eval_fraction"):
        seen["heldout"] = repr(split_rows(ROWS, params.eval_fraction, params.seed)[1])
    if alg in ("rloo", "grpo"):
        from rlhf.training.online import online_prompts

        seen["prompts"] = online_prompts(models["tokenizer"], ROWS[:2], params)
    if alg == "ppo":
        seen["ppo"] = _ppo_run(params, tmp_path, models)
    else:
        config = _trl_config(alg, params, trl, tmp_path).to_dict()
        seen["config"] = {k: v for k, v in config.items() if k not in ("output_dir", "logging_dir")}
    return json.dumps(seen, default=repr, sort_keys=True)


def _ppo_run(params, tmp_path, models):
    from rlhf.training.ppo.trainer import train_ppo
    from tests.unit.test_ppo import PROMPTS

    logs = []
    out = tmp_path / f"ppo-{len(list(tmp_path.iterdir()))}"
    metrics = train_ppo(
        policy_path=str(models["policy"]),
        reward_model_path=str(models["reward"]),
        prompts=PROMPTS,
        output_dir=str(out),
        params=params,
        on_log=logs.append,
    )
    from safetensors.torch import load_file

    saved = out / "model.safetensors"  # a LoRA run saves its adapter alone
    weights = load_file(str(saved if saved.exists() else out / "adapter_model.safetensors"))
    digest = hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights))).hexdigest()

    def timeless(d):  # wall-clock seconds differ between any two runs
        return {k: v for k, v in d.items() if k != "seconds"}

    return {"logs": [timeless(e) for e in logs], "metrics": timeless(metrics), "weights": digest}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.unit.test_ppo import _tiny_models

    policy, reward = _tiny_models(tmp_path_factory.mktemp("noop"))
    from rlhf.modeling.tokens import load_tokenizer

    return {"policy": policy, "reward": reward, "tokenizer": load_tokenizer(str(policy))}


# PPO on tiny models: small enough that each parameter can be seen acting in two updates.
PPO_BASE = dict(
    steps=2,
    batch_size=4,
    mini_batch_size=2,
    num_ppo_epochs=2,
    max_completion_length=6,
    max_prompt_length=8,
    eval_num_prompts=2,
    eval_samples_per_prompt=2,
    seed=3,
)


_BEFORE: dict[str, str] = {}


@pytest.mark.parametrize("algorithm,name", CASES, ids=[f"{a}-{n}" for a, n in CASES])
def test_changing_a_parameter_changes_what_the_run_does(algorithm, name, tmp_path, models):
    if (algorithm, name) in JOB_LEVEL:
        return  # shown on the data a run is given, below
    cls = PARAMS_BY_ALGORITHM[algorithm]
    context = CONTEXT.get((algorithm, name), CONTEXT.get(name, {}))
    base = {**(PPO_BASE if algorithm == "ppo" else {}), **context}
    key = json.dumps([algorithm, base], sort_keys=True)
    if key not in _BEFORE:  # the unchanged run, once per algorithm and context
        torch.manual_seed(0)
        _BEFORE[key] = _observe(algorithm, dict(base), tmp_path, models)
    before = _BEFORE[key]
    torch.manual_seed(0)
    after = _observe(algorithm, {**base, name: _changed(algorithm, cls, name)}, tmp_path, models)
    assert before != after, f"{algorithm}: changing {name} changed nothing a run would do"


def test_ppo_runs_repeat_exactly_so_a_difference_is_the_parameter_s(tmp_path, models):
    params, _ = build_params("ppo", PPO_BASE)
    assert _ppo_run(params, tmp_path, models) == _ppo_run(params, tmp_path, models)


def test_job_level_parameters_change_the_data(session, settings, tmp_path):
    from rlhf.jobs.training import _prepare
    from rlhf.services.checkpoints import register_checkpoint
    from rlhf.services.prompts import PromptRecord, import_records
    from rlhf.services.runs import create_run
    from rlhf.services.votes import record_vote
    from tests import factories

    rater = factories.user(session, "r")
    for comp in factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(4)], serve=True):
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    import_records(
        session=session,
        records=[PromptRecord(messages=[{"role": "user", "content": f"tagged {i}"}], tags=["mine"]) for i in range(12)],
    )
    reward = register_checkpoint(session=session, path="org/rm", name="rm", kind="reward")
    demos = tmp_path / "demos.jsonl"
    demos.write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
    )

    def data(alg, params):
        run = create_run(
            session=session, algorithm=alg, params=params, reward_checkpoint_id=reward.id if alg != "sft" else None
        )
        return open(_prepare(session, settings, run).data).read()

    for alg, name in sorted(JOB_LEVEL):
        value = str(demos) if name == "data" else "mine"
        assert data(alg, {}) != data(alg, {name: value}), f"{alg}: {name} changed nothing"


def test_the_shipped_trl_field_lists_are_the_installed_trl_s():
    assert shipped_fields() == installed_fields(), "run `python -m rlhf.training.trl_fields` after a TRL upgrade"


def test_a_misspelt_trl_name_is_refused_with_its_close_matches():
    from rlhf.errors import InvalidInput
    from rlhf.training.params import validate_params

    with pytest.raises(InvalidInput, match="trl.label_smoothing"):
        validate_params("dpo", {"trl.label_smoothin": "0.1"})
    with pytest.raises(InvalidInput, match="project's own"):
        validate_params("ppo", {"trl.warmup_steps": "1"})
    assert validate_params("grpo", {"trl.warmup_steps": "3"}) == {"trl.warmup_steps": "3"}
