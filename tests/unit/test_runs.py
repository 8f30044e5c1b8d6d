from datetime import timedelta

import pytest

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import JobStatus, utcnow
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.runs import cancel_run, claim_run, create_run, get_run, reap_stale_runs
from rlhf.services.votes import record_vote
from rlhf.training.config import build_params, parse_set_options, validate_params
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
    assert run.status is JobStatus.queued and run.snapshot["rows"] == 3 and run.snapshot_hash
    assert run.params == {"steps": 7, "beta": 0.2}
    assert run.base_checkpoint_id == base.id


def test_training_without_votes_fails_before_anything_is_queued(session):
    register_checkpoint(session=session, path="org/base", name="base", serve=True)
    factories.comparisons(session, [("a", "b")])
    with pytest.raises(InvalidInput, match="no usable votes"):
        create_run(session=session, algorithm="dpo")


@pytest.mark.parametrize("kwargs, message", [
    ({"algorithm": "pp0"}, "unknown algorithm"),
    ({"algorithm": "dpo", "params": {"stepz": 3}}, "unknown parameter 'stepz'"),
    ({"algorithm": "dpo", "params": {"steps": "many"}}, "steps: cannot read"),
    ({"algorithm": "dpo", "params": {"steps": 0}}, "steps must be at least 1"),
    ({"algorithm": "dpo", "base_checkpoint_id": 999}, "no checkpoint 999"),
])
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
    params, trl = build_params("dpo", {"loss_type": "sigmoid", "use_lora": "true", "trl.warmup_ratio": "0.1"})
    assert params.loss_type == ["sigmoid"] and params.use_lora is True and trl == {"warmup_ratio": "0.1"}
    with pytest.raises(InvalidInput, match="true or false"):
        validate_params("sft", {"use_lora": "3"})
