from datetime import timedelta

import pytest

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import JobStatus, utcnow
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.run_data import build_snapshot
from rlhf.services.runs import cancel_run, claim_run, create_run, get_run, reap_stale_runs
from rlhf.services.votes import record_vote
from rlhf.training.params import build_params, parse_set_options, validate_params
from tests import factories


def _with_votes(session, n=3):
    base = register_checkpoint(session=session, path="org/base", name="base", serve=True)
    rater = factories.user(session)
    for c in factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(n)]):
        record_vote(session=session, rater=rater, comparison_id=c.id, choice="a", as_shown=False)
    return base


def test_run_freezes_snapshot_and_defaults_to_newest_serving_policy(session):
    base = _with_votes(session)
    register_checkpoint(session=session, path="org/older", name="older")
    run = create_run(session=session, algorithm="dpo", params={"steps": "7", "beta": "0.2"})
    # The request freezes the votes; the worker builds their rows before it trains.
    assert run.status is JobStatus.queued and run.snapshot["votes"] == 3 and run.snapshot_hash is None
    assert build_snapshot(session=session, run=run).rows == 3 and run.snapshot["rows"] == 3 and run.snapshot_hash
    assert run.params == {"steps": 7, "beta": 0.2}
    assert run.base_checkpoint_id == base.id


def test_training_without_votes_fails_before_anything_is_queued(session):
    register_checkpoint(session=session, path="org/base", name="base", serve=True)
    factories.comparisons(session, [("a", "b")])
    with pytest.raises(InvalidInput, match="no usable votes"):
        create_run(session=session, algorithm="dpo")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"algorithm": "pp0"}, "unknown algorithm"),
        ({"algorithm": "dpo", "params": {"stepz": 3}}, "unknown parameter 'stepz'"),
        ({"algorithm": "dpo", "params": {"steps": "many"}}, "steps: cannot read"),
        ({"algorithm": "dpo", "params": {"steps": 0}}, "steps must be at least 1"),
        ({"algorithm": "dpo", "base_checkpoint_id": 999}, "no checkpoint 999"),
    ],
)
def test_bad_run_requests_are_refused_with_a_reason(session, kwargs, message):
    _with_votes(session)
    with pytest.raises((InvalidInput, NotFound), match=message):
        create_run(session=session, **kwargs)


def test_online_rl_needs_a_reward_model(session):
    _with_votes(session)
    with pytest.raises(InvalidInput, match="needs a reward model"):
        create_run(session=session, algorithm="ppo")
    policy = register_checkpoint(session=session, path="org/policy", name="p2")
    with pytest.raises(InvalidInput, match="not a reward model"):
        create_run(session=session, algorithm="grpo", reward_checkpoint_id=policy.id)


def test_a_run_is_claimed_once(session):
    _with_votes(session)
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    assert claim_run(session=session, run_id=run.id, worker="w1")
    assert not claim_run(session=session, run_id=run.id, worker="w2")
    assert get_run(session=session, run_id=run.id).worker == "w1"


def test_cancel_and_reap(session):
    _with_votes(session)
    queued = create_run(session=session, algorithm="dpo")
    running = create_run(session=session, algorithm="dpo")
    session.commit()
    assert cancel_run(session=session, run_id=queued.id).status is JobStatus.cancelled
    with pytest.raises(Conflict):
        cancel_run(session=session, run_id=queued.id)
    claim_run(session=session, run_id=running.id)
    r = get_run(session=session, run_id=running.id)
    r.heartbeat_at = utcnow() - timedelta(minutes=10)
    session.add(r)
    session.commit()
    assert reap_stale_runs(session=session, timeout=timedelta(minutes=5)) == [running.id]
    r = get_run(session=session, run_id=running.id)
    assert r.status is JobStatus.failed and "stopped reporting" in r.error


def test_param_parsing():
    assert parse_set_options(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(InvalidInput):
        parse_set_options(["novalue"])
    params, trl = build_params("dpo", {"loss_type": "sigmoid", "use_lora": "true", "trl.warmup_steps": "10"})
    assert params.loss_type == ["sigmoid"] and params.use_lora is True and trl == {"warmup_steps": 10}
    with pytest.raises(InvalidInput, match="true or false"):
        validate_params("sft", {"use_lora": "3"})


def test_peft_names_the_adapter_and_use_lora_is_its_old_spelling():
    assert build_params("dpo", {"use_lora": "true"})[0].peft == "lora"
    assert build_params("sft", {"use_lora": False})[0].peft == "none"
    assert build_params("dpo", {"peft": "lora", "use_lora": "true"})[0].peft == "lora"
    with pytest.raises(InvalidInput, match="contradicts peft=prompt_tuning"):
        validate_params("dpo", {"peft": "prompt_tuning", "use_lora": "true"})
    with pytest.raises(InvalidInput, match="must be one of none, lora, prompt_tuning"):
        validate_params("dpo", {"peft": "qlora"})
    pt = build_params("sft", {"peft": "prompt_tuning", "num_virtual_tokens": "12"})[0]
    assert (pt.peft, pt.num_virtual_tokens, pt.use_lora) == ("prompt_tuning", 12, False)
    with pytest.raises(InvalidInput, match="num_virtual_tokens acts only on a prompt-tuning run"):
        validate_params("dpo", {"num_virtual_tokens": "4"})
    for algorithm, why in [("reward", "cannot be merged"), ("ppo", "value model"), ("grpo", "DPO and SFT")]:
        with pytest.raises(InvalidInput, match=f"peft=prompt_tuning is not available for {algorithm}: .*{why}"):
            validate_params(algorithm, {"peft": "prompt_tuning"})
    assert build_params("ppo", {"peft": "lora"})[0].use_lora is True


def test_every_algorithm_shares_the_common_parameter_names():
    from rlhf.models import Algorithm
    from rlhf.training.base_params import CommonParams
    from rlhf.training.params import PARAMS_BY_ALGORITHM, params_class

    assert set(PARAMS_BY_ALGORITHM) == {a.value for a in Algorithm}
    for algorithm in Algorithm:
        assert issubclass(params_class(algorithm), CommonParams)
    # One name per knob across the online algorithms: the same --set works for each.
    for algorithm in ("ppo", "rloo", "grpo"):
        params, _ = build_params(algorithm, {"steps": "3", "beta": "0.2", "max_completion_length": "9"})
        assert (params.steps, params.beta, params.max_completion_length) == (3, 0.2, 9)


def test_old_ppo_spellings_are_read_as_the_shared_names():
    params = validate_params(
        "ppo", {"total_updates": "4", "kl_coef": "0.3", "rollout_batch_size": 6, "max_new_tokens": 12}
    )
    assert params == {"steps": 4, "beta": 0.3, "batch_size": 6, "max_completion_length": 12}
    with pytest.raises(InvalidInput, match="give only 'steps'"):
        validate_params("ppo", {"total_updates": 4, "steps": 5})


@pytest.mark.parametrize(
    "algorithm, params, message",
    [
        ("grpo", {"max_length": 64}, "max_prompt_length, max_completion_length"),
        ("ppo", {"num_processes": 2}, "trains in one process"),
        ("ppo", {"value_model_init": "value"}, "must be one of auto, reward, policy"),
        ("ppo", {"mini_batch_size": 0}, "mini_batch_size must be at least 1"),
    ],
)
def test_parameters_that_would_do_nothing_or_fail_later_are_refused(algorithm, params, message):
    with pytest.raises(InvalidInput, match=message):
        validate_params(algorithm, params)


def test_ppo_optional_numbers_can_be_switched_off_and_on():
    assert validate_params("ppo", {"missing_eos_penalty": "null", "value_learning_rate": "1e-4"}) == {
        "missing_eos_penalty": None,
        "value_learning_rate": 1e-4,
    }


def test_validating_parameters_loads_no_model_library():
    import subprocess
    import sys

    code = (
        "import sys; from rlhf.training.params import validate_params, describe; "
        "[validate_params(a, {'steps': '2', 'beta': '0.1'}) for a in ('ppo', 'grpo', 'rloo', 'dpo')]; "
        "[describe(a) for a in ('ppo', 'sft', 'reward')]; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
