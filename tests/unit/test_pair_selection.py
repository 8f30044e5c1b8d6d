"""Pair selection: ``uncertain`` opens first the pairs the reward model is least sure about.

The serving policy is the tiny model; the reward model is a sequence-classification
model built on it (a fresh scoring head: its margins are arbitrary but real, and
deterministic). The job samples a pool of prompts, scores every candidate pair, and opens
the smallest margins first; raters then get those first, because pairs are handed out
in id order.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from rlhf.errors import InvalidInput
from rlhf.jobs.generation import execute_generation_job
from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
from rlhf.models import Comparison, JobStatus, Prompt, Response
from rlhf.services.checkpoints import register_checkpoint, retire_checkpoint
from rlhf.services.comparisons import next_for_rater
from rlhf.services.generation_jobs import create_generation_job, get_generation_job
from rlhf.services.prompts import PromptRecord, import_records
from rlhf.settings import get_settings, reset_settings_cache
from rlhf.training.scoring import load_reward_model, score_conversations
from tests import factories

sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
QUESTIONS = [
    "What do goats eat?",
    "Which country is Rome in?",
    "What is 9 times 12?",
    "Is it sunny today?",
    "How do I boil an egg?",
    "Can I sit here?",
    "What colour is the sky?",
    "Name a fruit.",
    "Where is the station?",
    "May I borrow a pen?",
    "What time is it?",
    "Why is snow white?",
]
SAMPLING = {"max_new_tokens": 24}


def _world(session, tiny_model_dir, reward_dir=None):
    register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    import_records(
        session=session, records=[PromptRecord(messages=[{"role": "user", "content": q}]) for q in QUESTIONS]
    )
    rm = register_checkpoint(session=session, path=str(reward_dir), name="rm") if reward_dir else None
    session.commit()
    return rm


def _comparisons(session, job_id):
    session.expire_all()
    return list(session.exec(select(Comparison).where(Comparison.job_id == job_id).order_by(Comparison.id)))


def _conversation(session, comp, response_id):
    messages = session.get(Prompt, comp.prompt_id).messages
    return messages + [{"role": "assistant", "content": session.get(Response, response_id).text}]


def test_uncertain_opens_the_lowest_margin_pairs_first(session, settings, tiny_model_dir, reward_dir):
    rm = _world(session, tiny_model_dir, reward_dir)
    job = create_generation_job(session=session, strategy="uncertain", limit=3, sampling=SAMPLING)
    session.commit()
    assert job.params["reward_checkpoint_id"] == rm.id and job.params["pool"] == 12
    assert execute_generation_job(job.id, settings) is JobStatus.succeeded

    comps = _comparisons(session, job.id)
    result = get_generation_job(session=session, job_id=job.id).result
    assert len(comps) == result["comparisons"] == 3 and result["candidate_prompts"] == len(QUESTIONS)
    assert all(c.strategy == "uncertain" and c.reward_margin is not None for c in comps)
    margins = [c.reward_margin for c in comps]
    assert margins == sorted(margins), "comparison ids ascend with the margin"
    assert result["margin_min"] == pytest.approx(margins[0], abs=1e-6)

    # The stored margin is what the reward model says about the stored pair.
    model, tok = load_reward_model(rm.path)
    convs = [_conversation(session, c, rid) for c in comps for rid in (c.response_a_id, c.response_b_id)]
    scores = score_conversations(model, tok, convs)
    assert margins == pytest.approx([abs(scores[2 * i] - scores[2 * i + 1]) for i in range(len(comps))], abs=1e-4)

    # They are the three smallest margins of every candidate pair the job sampled (same seed, same draws).
    prompts = [p.messages for p in session.exec(select(Prompt).order_by(Prompt.id))]
    samples = sample_checkpoint(
        str(tiny_model_dir), prompts, n=2, params=SamplingParams(seed=job.params["seed"], **SAMPLING)
    )
    pairs = [(p, a.text, b.text) for p, (a, b) in zip(prompts, samples) if a.text.strip() != b.text.strip()]
    all_scores = score_conversations(
        model, tok, [p + [{"role": "assistant", "content": t}] for p, a, b in pairs for t in (a, b)]
    )
    every = sorted(abs(all_scores[2 * i] - all_scores[2 * i + 1]) for i in range(len(pairs)))
    assert result["candidates"] == len(pairs) > 3, "there was a choice to make"
    assert margins == pytest.approx(every[:3], abs=1e-4)

    # Only opened pairs' responses are stored; the first pair a rater gets is the least certain one.
    assert len(session.exec(select(Response).where(Response.job_id == job.id)).all()) == 6
    rater = factories.user(session)
    assert next_for_rater(session=session, rater=rater).comparison_id == comps[0].id


@sqlite_only
def test_uncertain_needs_a_reward_model_and_takes_the_newest_not_retired(session, settings, tiny_model_dir, reward_dir):
    _world(session, tiny_model_dir)
    with pytest.raises(InvalidInput, match="needs a reward model, and none is registered") as refused:
        create_generation_job(session=session, strategy="uncertain")
    assert (refused.value.param, refused.value.allowed, refused.value.remedy) == (
        "select",
        ("random",),
        "train_reward_model",
    )
    older = register_checkpoint(session=session, path=str(reward_dir), name="rm-1")
    newer = register_checkpoint(session=session, path=str(reward_dir), name="rm-2")
    assert create_generation_job(session=session, strategy="uncertain").params["reward_checkpoint_id"] == newer.id
    retire_checkpoint(session=session, checkpoint_id=newer.id)
    job = create_generation_job(session=session, strategy="uncertain", limit=2)
    assert job.params["reward_checkpoint_id"] == older.id and job.params["pool"] == 8
    assert (
        create_generation_job(session=session, strategy="uncertain", reward_checkpoint_id="rm-2").params[
            "reward_checkpoint_id"
        ]
        == newer.id
    )
    with pytest.raises(InvalidInput, match="not a reward model"):
        create_generation_job(session=session, strategy="uncertain", reward_checkpoint_id="tiny")
    with pytest.raises(InvalidInput, match="only apply to uncertain pair selection"):
        create_generation_job(session=session, reward_checkpoint_id=older.id)
    with pytest.raises(InvalidInput, match="unknown pair selection"):
        create_generation_job(session=session, strategy="gold")


@sqlite_only
def test_random_records_its_strategy_and_votes_follow_the_setting(session, settings, tiny_model_dir, monkeypatch):
    _world(session, tiny_model_dir)
    monkeypatch.setenv("RLHF_VOTES_PER_COMPARISON", "3")
    reset_settings_cache()
    job = create_generation_job(session=session, limit=4, sampling=SAMPLING)
    session.commit()
    assert job.params["target_votes"] == 3 and job.params["strategy"] == "random"
    assert execute_generation_job(job.id, get_settings()) is JobStatus.succeeded
    comps = _comparisons(session, job.id)
    assert comps and all(c.strategy == "random" and c.reward_margin is None and c.target_votes == 3 for c in comps)
    assert get_generation_job(session=session, job_id=job.id).result["strategy"] == "random"
    # An explicit number still wins over the setting.
    assert create_generation_job(session=session, target_votes=1).params["target_votes"] == 1


@sqlite_only
def test_api_generate_with_select(session, settings, tiny_model_dir, reward_dir, monkeypatch):
    from fastapi.testclient import TestClient

    from feedback_ui.app import create_app

    _world(session, tiny_model_dir)
    factories.user(session, name="eng", role="engineer", password="pw-engineer")
    session.commit()
    monkeypatch.setenv("RLHF_VOTES_PER_COMPARISON", "2")
    reset_settings_cache()
    with TestClient(create_app(get_settings(), start_worker=False)) as client:
        auth = ("eng", "pw-engineer")
        refused = client.post("/api/generate", auth=auth, json={"select": "uncertain"})
        assert refused.status_code == 422 and "needs a reward model" in refused.json()["detail"]
        register_checkpoint(session=session, path=str(reward_dir), name="rm")
        session.commit()
        job = client.post("/api/generate", auth=auth, json={"select": "uncertain", "limit": 2}).json()
        assert job["params"]["strategy"] == "uncertain" and job["params"]["target_votes"] == 2
        assert job["params"]["pool"] == 8
        assert client.post("/api/generate", auth=auth, json={"select": "best"}).status_code == 422


@pytest.fixture
def db_url(fresh_db_url):
    """Generation jobs read the prompts and checkpoints through their own sessions: commit for real."""
    return fresh_db_url


@pytest.fixture
def session(committed_session):
    return committed_session
