"""An AI judge served by the app's own engine: the judge job starts ``transformers serve`` with the
tiny checkpoint, asks it about each pair in both orders, and counts the output it cannot read."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rlhf.jobs.judging import execute_judge_job
from rlhf.models import Checkpoint, ComparisonStatus, JobStatus, JudgeVerdict, Vote
from rlhf.services.judges import create_judge_job, get_judge_job, judge_source, register_judge
from tests import factories

pytestmark = pytest.mark.integration

PAIRS = [
    ("Please take an apple.", "Take an apple."),
    ("Take a pear.", "Please take a pear."),
    ("Please sit down.", "Sit down."),
    ("Open the door.", "Please open the door."),
]


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_a_tiny_checkpoint_judge_runs_on_the_embedded_engine_and_its_unreadable_verdicts_store_no_vote(
    session, settings, tiny_model_dir
):
    settings = settings.model_copy(update={"inference_url": ""})  # no engine named: the job starts its own
    comparisons = factories.comparisons(session, PAIRS, checkpoint_path=str(tiny_model_dir), serve=True)
    ckpt = session.exec(select(Checkpoint).where(Checkpoint.path == str(tiny_model_dir))).one()
    judge = register_judge(session=session, name="tiny", checkpoint_id=ckpt.id, concurrency=2)
    job = create_judge_job(session=session, judge=judge.name)
    session.commit()
    assert job.id is not None and judge.id is not None

    status = execute_judge_job(job.id, settings)
    session.expire_all()
    job = get_judge_job(session=session, job_id=job.id)
    assert status is JobStatus.succeeded, job.error
    result = job.result

    verdicts = session.exec(select(JudgeVerdict).where(JudgeVerdict.judge_id == judge.id)).all()
    assert result["pairs_judged"] == len(verdicts) == len(PAIRS)
    unreadable = {v.comparison_id for v in verdicts if v.outcome == "unparseable"}
    # The tiny model cannot follow the judge's template: most of what it says has no verdict tag.
    assert result["unparseable"] == len(unreadable) > len(PAIRS) / 2
    assert all(v.verdict is None or v.swapped_verdict is None for v in verdicts if v.comparison_id in unreadable)
    votes = session.exec(select(Vote).where(Vote.source == judge_source(judge.id))).all()
    assert len(votes) == result["voted"] and not unreadable & {v.comparison_id for v in votes}
    assert result["tokens"] > 0
    # Still open for people: a judge's output, read or not, never counts toward a pair's target.
    for comparison in comparisons:
        session.refresh(comparison)
        assert comparison.status is ComparisonStatus.open
    # The app's embedded engine served it: the checkpoint was loaded there by its path.
    assert str(tiny_model_dir) in (settings.data_dir / "logs" / "inference.log").read_text(errors="replace")
