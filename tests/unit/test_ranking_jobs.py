"""A generation job with ``rank``: one ranking of K answers per prompt, drawn from the serving checkpoints in turn."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rlhf.errors import InvalidInput
from rlhf.jobs.generation import execute_generation_job
from rlhf.models import Comparison, ComparisonSource, JobStatus, Ranking, Response
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.generation_jobs import create_generation_job, get_generation_job
from rlhf.services.prompts import PromptRecord, import_records

QUESTIONS = ["What do goats eat?", "Which country is Rome in?", "Name a fruit."]


def test_a_rank_job_opens_one_ranking_per_prompt_across_the_serving_checkpoints(session, settings, tiny_model_dir):
    older = register_checkpoint(session=session, path=str(tiny_model_dir), name="older", serve=True)
    newer = register_checkpoint(session=session, path=str(tiny_model_dir), name="newer", serve=True)
    import_records(
        session=session, records=[PromptRecord(messages=[{"role": "user", "content": q}]) for q in QUESTIONS]
    )
    job = create_generation_job(session=session, rank=4, sampling={"max_new_tokens": 16, "temperature": 1.5})
    session.commit()
    assert execute_generation_job(job.id, settings) is JobStatus.succeeded

    session.expire_all()
    result = get_generation_job(session=session, job_id=job.id).result
    rankings = list(session.exec(select(Ranking).where(Ranking.job_id == job.id).order_by(Ranking.id)))
    assert result["rankings"] == len(rankings) == len(QUESTIONS) and result["responses"] == 4 * len(QUESTIONS)
    for ranking in rankings:
        answers = [session.get(Response, r) for r in ranking.response_ids]
        assert len({a.text.strip() for a in answers}) == len(answers) >= 2  # identical answers dropped
        pairs = session.exec(select(Comparison).where(Comparison.ranking_id == ranking.id)).all()
        assert len(pairs) == len(answers) * (len(answers) - 1) // 2
        assert {p.source for p in pairs} == {ComparisonSource.ranking}
    # Answers come from the checkpoints in turn, newest first: two each of four per prompt.
    drawn = session.exec(select(Response.checkpoint_id).where(Response.job_id == job.id)).all()
    assert sorted(drawn) == sorted([older.id, newer.id] * 2 * len(QUESTIONS))
    assert result["comparisons"] == sum(len(r.response_ids) * (len(r.response_ids) - 1) // 2 for r in rankings)


def test_rank_refuses_what_does_not_apply_to_a_ranking(session, tiny_model_dir):
    register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    for kwargs, named in (
        ({"rank": 7}, "rank"),
        ({"rank": 4, "strategy": "uncertain"}, "pair selection"),
        ({"rank": 4, "per_checkpoint": 2}, "per_checkpoint"),
        ({"rank": 4, "ask_strength": True}, "ask_strength"),
    ):
        with pytest.raises(InvalidInput, match=named):
            create_generation_job(session=session, **kwargs)


# The worker reads the job through connections of its own: the data is committed.
@pytest.fixture
def db_url(fresh_db_url):
    return fresh_db_url


@pytest.fixture
def session(committed_session):
    return committed_session
