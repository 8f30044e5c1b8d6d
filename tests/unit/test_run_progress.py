"""What a running run reports between its last step and its result: that it is evaluating."""

import json

import pytest

from rlhf import db
from rlhf.jobs.training import _report, _Tail
from rlhf.services.runs import claim_run, create_run, get_run
from rlhf.services.votes import record_vote
from rlhf.training.progress import RunProgress
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


def test_progress_stored_by_older_runs_reads_back_unchanged():
    stored = {"step": 5, "max_steps": 5, "loss": 0.5, "elapsed_s": 1.25, "phase": "evaluating"}
    progress = RunProgress.stored(stored)
    assert (progress.step, progress.max_steps, progress.evaluating, progress.step_text) == (5, 5, True, "5/5")
    assert progress.number("loss") == 0.5 and progress.values == {"loss": 0.5, "elapsed_s": 1.25}
    assert progress.to_dict() == stored
    assert RunProgress.stored({}) is None and RunProgress.stored(None) is None  # queued, or loading the model
    no_total = RunProgress.stored({"step": 3, "max_steps": None})
    assert no_total.step_text == "3" and not no_total.training_done


def test_a_trainer_log_line_is_what_the_worker_reads_and_stores():
    line = RunProgress.logged(3, {"loss": 0.7, "max_steps": 5, "elapsed_s": 0.5}).to_json()
    assert json.loads(line) == {"step": 3, "max_steps": 5, "loss": 0.7, "elapsed_s": 0.5}
    read = RunProgress.from_json(line)
    assert read == RunProgress(step=3, max_steps=5, values={"loss": 0.7, "elapsed_s": 0.5})
    assert not read.training_done and "phase" not in read.to_dict()
    done = RunProgress.from_json(json.dumps({"step": 5, "max_steps": 5})).now_evaluating()
    assert done.training_done and done.to_dict() == {"step": 5, "max_steps": 5, "phase": "evaluating"}
