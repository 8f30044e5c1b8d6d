"""A judge job end to end: a worker asks an OpenAI-compatible judge on a port about every pair and stores its votes."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import select

from rlhf.jobs import judging
from rlhf.jobs.judging import execute_judge_job
from rlhf.models import JobStatus, JudgeVerdict, Vote
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.judges import create_judge_job, get_judge_job, judge_source, register_judge
from tests import factories
from tests.judge_server import JudgeServer

WORDS = {"A": "a", "B": "b", "C": "tie"}


def polite_pairs(n: int) -> list[tuple[str, str]]:
    """One answer of each pair says "please" (what the test judge's rule prefers), on alternate sides."""
    pairs = []
    for i in range(n):
        polite, plain = f"Please take fruit number {i}.", f"Take fruit number {i}."
        pairs.append((polite, plain) if i % 2 else (plain, polite))
    return pairs


def run_judge(session, settings, judge, limit=None):
    job = create_judge_job(session=session, judge=stored(judge), source="all", limit=limit)
    session.commit()
    status = execute_judge_job(stored(job), settings)
    session.expire_all()
    return status, get_judge_job(session=session, job_id=stored(job))


def stored(row) -> int:
    assert row.id is not None
    return row.id


def votes_of(session, judge) -> dict[int, str]:
    rows = session.exec(select(Vote).where(Vote.source == judge_source(stored(judge))))
    return {v.comparison_id: v.choice.value for v in rows}


def verdicts_of(session, judge) -> dict[int, JudgeVerdict]:
    return {v.comparison_id: v for v in session.exec(select(JudgeVerdict).where(JudgeVerdict.judge_id == judge.id))}


def test_asking_both_orders_keeps_position_bias_out_of_the_stored_votes(session, settings):
    pairs = polite_pairs(30)
    comparisons = factories.comparisons(session, pairs)
    with JudgeServer(noise=0.1, position_bias=0.3, seed=3) as server:
        biased = {stored(c) for c, (a, b) in zip(comparisons, pairs) if server.biased(a, b)}
        # What the judge means on each pair, stored order: its rule, with its consistent mistakes.
        meant = {stored(c): WORDS[server.verdict("", a, b)] for c, (a, b) in zip(comparisons, pairs)}
        assert 3 <= len(biased) <= 20 and any(meant[c] != rule for c, rule in _rule(comparisons, pairs).items())

        careful = register_judge(session=session, name="careful", url=server.url, model="m", concurrency=3)
        status, job = run_judge(session, settings, careful)
        assert status is JobStatus.succeeded, job.error
        assert server.requests == 2 * len(pairs)  # each pair in both orders
        votes = votes_of(session, careful)
        assert votes == {c: v for c, v in meant.items() if c not in biased}
        verdicts = verdicts_of(session, careful)
        assert {c for c, v in verdicts.items() if v.outcome == "inconsistent"} == biased
        assert all((verdicts[c].verdict, verdicts[c].swapped_verdict) == ("a", "b") for c in biased)
        result = job.result
        assert result["pairs_judged"] == len(pairs) and result["voted"] == len(pairs) - len(biased)
        assert result["inconsistent"] == len(biased) and result["unparseable"] == 0
        assert result["verdicts"] == {k: list(votes.values()).count(k) for k in ("a", "b", "tie")}
        assert result["tokens"] == server.tokens > 0

        # Asked in one order only, the same judge's position bias becomes votes for A.
        hasty = register_judge(session=session, name="hasty", url=server.url, model="m", swap=False)
        status, job = run_judge(session, settings, hasty)
        assert status is JobStatus.succeeded, job.error
        hasty_votes = votes_of(session, hasty)
        assert len(hasty_votes) == len(pairs) and all(hasty_votes[c] == "a" for c in biased)
        assert job.result["inconsistent"] == 0


def _rule(comparisons, pairs) -> dict[int, str]:
    return {stored(c): "a" if "Please" in a else "b" for c, (a, b) in zip(comparisons, pairs)}


def test_output_without_a_verdict_is_counted_unparseable_and_casts_no_vote(session, settings):
    comparisons = factories.comparisons(session, polite_pairs(4))
    with JudgeServer(garbage=True) as server:
        judge = register_judge(session=session, name="vague", url=server.url, model="m")
        status, job = run_judge(session, settings, judge)
    assert status is JobStatus.succeeded, job.error
    assert job.result["unparseable"] == 4 and job.result["voted"] == 0
    assert votes_of(session, judge) == {}
    verdicts = verdicts_of(session, judge)
    assert set(verdicts) == {stored(c) for c in comparisons}
    assert {v.outcome for v in verdicts.values()} == {"unparseable"}


def test_a_rate_limited_judge_is_asked_again_until_it_answers(session, settings, monkeypatch):
    monkeypatch.setattr(judging, "RETRY_DELAYS_S", (0.01, 0.02, 0.04, 0.08))
    comparisons = factories.comparisons(session, polite_pairs(4))
    with JudgeServer(fail_status=429, fail_times=3) as server:
        judge = register_judge(session=session, name="busy", url=server.url, model="m", concurrency=1)
        status, job = run_judge(session, settings, judge)
    assert status is JobStatus.succeeded, job.error
    assert server.requests == 3 + 2 * 4
    assert votes_of(session, judge) == _rule(comparisons, polite_pairs(4))


def test_a_judge_that_fails_halfway_keeps_the_verdicts_it_gave(session, settings, monkeypatch):
    monkeypatch.setattr(judging, "RETRY_DELAYS_S", (0.01, 0.01, 0.01, 0.01))
    pairs = polite_pairs(30)
    comparisons = factories.comparisons(session, pairs)
    # One request at a time, both orders of a pair in turn: 50 answers are the first 25 pairs.
    with JudgeServer(fail_status=500, fail_from=50) as server:
        judge = register_judge(session=session, name="fragile", url=server.url, model="m", concurrency=1)
        status, job = run_judge(session, settings, judge)
    assert status is JobStatus.failed
    assert "500" in job.error and "25 pairs" in job.error
    assert server.requests == 50 + 1 + len(judging.RETRY_DELAYS_S)  # the failing one, asked again four times
    kept = {stored(c) for c in comparisons[:25]}
    assert set(verdicts_of(session, judge)) == kept
    assert votes_of(session, judge) == {c: v for c, v in _rule(comparisons, pairs).items() if c in kept}

    # The next job asks only about the pairs left.
    with JudgeServer() as server:
        judge.url = server.url
        session.add(judge)
        status, job = run_judge(session, settings, judge)
    assert status is JobStatus.succeeded, job.error
    assert job.result["pairs_judged"] == 5 and server.requests == 10


def test_an_unreachable_judge_fails_the_job_naming_its_url_and_stores_nothing(session, settings, monkeypatch):
    monkeypatch.setattr(judging, "RETRY_DELAYS_S", (0.01, 0.01, 0.01, 0.01))
    factories.comparisons(session, polite_pairs(3))
    url = f"http://127.0.0.1:{factories.free_port()}"
    judge = register_judge(session=session, name="gone", url=url, model="m")
    status, job = run_judge(session, settings, judge)
    assert status is JobStatus.failed
    assert url in job.error and "nothing was stored" in job.error
    assert verdicts_of(session, judge) == {} and votes_of(session, judge) == {}


def test_a_refused_request_is_not_asked_again(session, settings):
    factories.comparisons(session, polite_pairs(3))
    with JudgeServer(fail_status=401) as server:
        judge = register_judge(session=session, name="locked", url=server.url, model="m", concurrency=1)
        status, job = run_judge(session, settings, judge)
    assert status is JobStatus.failed and "401" in job.error
    assert server.requests == 1 and verdicts_of(session, judge) == {}


def test_the_api_key_comes_from_the_named_variable_and_a_missing_one_fails_naming_it(
    session, settings, monkeypatch, caplog
):
    factories.comparisons(session, polite_pairs(2))
    monkeypatch.delenv("RLHF_TEST_JUDGE_KEY", raising=False)
    with JudgeServer() as server:
        judge = register_judge(
            session=session, name="keyed", url=server.url, model="m", api_key_env="RLHF_TEST_JUDGE_KEY"
        )
        status, job = run_judge(session, settings, judge)
        assert status is JobStatus.failed and "RLHF_TEST_JUDGE_KEY" in job.error
        assert server.requests == 0

        monkeypatch.setenv("RLHF_TEST_JUDGE_KEY", "sk-test-secret-123")
        with caplog.at_level(logging.DEBUG):
            status, job = run_judge(session, settings, judge)
        assert status is JobStatus.succeeded, job.error
        assert server.keys == ["sk-test-secret-123"] * 4
        assert "sk-test-secret-123" not in caplog.text + str(job.result)


def test_a_checkpoint_judge_is_asked_through_the_apps_engine(session, settings):
    comparisons = factories.comparisons(session, polite_pairs(2))
    ckpt = register_checkpoint(session=session, path="org/judge-model", name="judge-model", serve=True)
    with JudgeServer() as server:
        judge = register_judge(session=session, name="own", checkpoint_id=ckpt.id)
        status, job = run_judge(session, settings.model_copy(update={"inference_url": server.url}), judge)
    assert status is JobStatus.succeeded, job.error
    assert {b["model"] for b in server.bodies} == {"org/judge-model"}
    assert all(b["temperature"] == 0 for b in server.bodies)
    assert votes_of(session, judge) == _rule(comparisons, polite_pairs(2))


# The worker reads the job through connections of its own: the data is committed.
@pytest.fixture
def db_url(fresh_db_url):
    return fresh_db_url


@pytest.fixture
def session(committed_session):
    return committed_session
