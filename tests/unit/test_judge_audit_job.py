"""A judge job's audit, end to end: the figures match what the test judge's own rule says it did."""

from __future__ import annotations

import pytest

from rlhf.jobs.judging import execute_judge_job
from rlhf.models import JobStatus
from rlhf.services.judge_audit import audit
from rlhf.services.judges import create_judge_job, register_judge
from rlhf.services.simulate import simulate
from tests import factories
from tests.judge_server import JudgeServer


@pytest.fixture
def db_url(fresh_db_url):  # the worker reads what the test commits
    return fresh_db_url


@pytest.fixture
def session(committed_session):
    return committed_session


def test_the_audit_of_a_judged_job_matches_the_test_judge_s_own_ground_truth(session, settings):
    pairs = [
        (f"Please take fruit {i}.", f"Take fruit {i} now.")
        if i % 2
        else (f"Take fruit {i} now.", f"Please take fruit {i}.")
        for i in range(240)
    ]
    factories.comparisons(session, pairs)
    simulate(session=session, rule="contains:please")  # people vote by the rule itself, no noise
    session.commit()
    with JudgeServer(noise=0.15, position_bias=0.25, seed=11) as server:
        judge = register_judge(session=session, name="audited", url=server.url, model="m")
        job = create_judge_job(session=session, judge=judge.id)
        session.commit()
        assert execute_judge_job(job.id, settings) is JobStatus.succeeded
        # What the judge's own rule says it does: biased pairs flip with the order; of the others,
        # it says what the rule says except on its noisy ones.
        biased = [p for p in pairs if server.biased(*p)]
        steady = [p for p in pairs if not server.biased(*p)]
        right = [p for p in steady if server.verdict("", *p) == ("A" if "Please" in p[0] else "B")]
    session.expire_all()
    report = audit(session=session, judge=judge, min_overlap=20)
    assert report["judged_both_orders"] == len(pairs) and report["inconsistent"] == len(biased)
    assert report["position_consistency"] == pytest.approx(len(steady) / len(pairs), abs=0.05)
    assert report["overlap"] == len(steady)  # every consistent verdict is a vote on a pair people voted on
    assert report["agreement"] == pytest.approx(len(right) / len(steady), abs=0.05)
    assert 0.15 < 1 - report["position_consistency"] < 0.35 and 0.75 < report["agreement"] < 0.95
