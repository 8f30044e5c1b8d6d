"""``rlhf demo --rounds N`` says how training goes while it trains, instead of minutes of silence."""

import time

from rlhf import db
from rlhf.services.runs import claim_run, create_run, heartbeat
from rlhf.services.votes import record_vote
from rlhf_cli import demo
from tests import factories


def test_a_round_prints_the_runs_steps_and_its_evaluation_while_it_trains(session, settings, monkeypatch, capsys):
    rater = factories.user(session)
    (comp,) = factories.comparisons(session, [("x", "y")], serve=True)
    record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a")
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    engine = db.get_engine(settings.database_url)
    monkeypatch.setattr(demo, "PROGRESS_EVERY_S", 0.05)

    def fake_training(run_id, _settings):  # reports as the worker's tail of the trainer does
        with db.session_scope(engine) as s:
            claim_run(session=s, run_id=run_id, worker="w")
        for progress in (
            {"step": 10, "max_steps": 20, "loss": 0.69},
            {"step": 20, "max_steps": 20, "loss": 0.4},
            {"step": 20, "max_steps": 20, "loss": 0.4, "phase": "evaluating"},
        ):
            with db.session_scope(engine) as s:
                heartbeat(session=s, run_id=run_id, progress=progress)
            time.sleep(0.3)

    demo._run_with_progress(engine, settings, run.id, 1, fake_training)
    out = capsys.readouterr().out
    assert "round 1: step 10/20, loss 0.690" in out and "round 1: step 20/20, loss 0.400" in out
    assert "round 1: training done, evaluating the new checkpoint" in out
