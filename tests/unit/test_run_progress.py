"""What a running run reports between its last step and its result: that it is evaluating."""

import json

import pytest

from rlhf import db
from rlhf.jobs.training import _report, _Tail
from rlhf.services.runs import claim_run, create_run, get_run
from rlhf.services.votes import record_vote
from tests import factories


@pytest.fixture
def db_url(fresh_db_url):
    """The reporter writes through its own session: commit for real."""
    return fresh_db_url


@pytest.fixture
def session(committed_session):
    return committed_session


def test_after_the_last_step_the_run_says_it_is_evaluating(session, settings, tmp_path):
    rater = factories.user(session)
    (comp,) = factories.comparisons(session, [("x", "y")], serve=True)
    record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a")
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    assert claim_run(session=session, run_id=run.id, worker="w")
    progress = tmp_path / "progress.jsonl"
    tail = _Tail(progress)
    engine = db.get_engine(settings.database_url)

    def reported() -> dict:
        session.expire_all()
        return get_run(session=session, run_id=run.id).progress

    progress.write_text(json.dumps({"step": 3, "max_steps": 5, "loss": 0.7}) + "\n")
    _report(engine, run.id, tail)
    _report(engine, run.id, tail)  # nothing new, and not at the last step: still training
    assert reported()["step"] == 3 and "phase" not in reported()
    with progress.open("a") as fh:
        fh.write(json.dumps({"step": 5, "max_steps": 5, "loss": 0.5}) + "\n")
    _report(engine, run.id, tail)
    assert reported()["step"] == 5 and "phase" not in reported()
    _report(engine, run.id, tail)  # the last step is logged and the trainer is quiet: it evaluates
    assert reported() == {"step": 5, "max_steps": 5, "loss": 0.5, "phase": "evaluating"}
