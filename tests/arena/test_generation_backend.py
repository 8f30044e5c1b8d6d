"""Generation jobs through the inference engine (``RLHF_INFERENCE_URL`` set) against the in-worker path."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rlhf.jobs.generation import execute_generation_job
from rlhf.models import Comparison, JobStatus, Response
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.generation_jobs import create_generation_job
from rlhf.services.prompts import PromptRecord, import_records

pytestmark = pytest.mark.integration


def _world(session, paths, n_prompts=3):
    for i, path in enumerate(paths):
        register_checkpoint(session=session, path=path, name=f"gen-{i}", serve=True)
    import_records(
        session=session,
        records=[PromptRecord(messages=[{"role": "user", "content": f"Question {i}?"}]) for i in range(n_prompts)],
    )
    session.commit()


def _job(session, settings, **sampling):
    job = create_generation_job(session=session, sampling={"max_new_tokens": 12, **sampling})
    session.commit()
    assert execute_generation_job(job.id, settings) is JobStatus.succeeded
    session.expire_all()
    return job.id, list(session.exec(select(Response).where(Response.job_id == job.id).order_by(Response.id)))


def test_a_job_through_the_engine_stores_what_the_in_worker_path_stores(
    settings, session, engine, tiny_copies, monkeypatch
):
    _world(session, tiny_copies)
    _, in_worker = _job(session, settings)
    monkeypatch.setattr(settings, "inference_url", engine.url)
    job_id, through_engine = _job(session, settings)
    assert len(through_engine) == len(in_worker) == 6  # 3 prompts x 2 checkpoints
    assert all(r.text for r in through_engine)
    # The same stored parameters either way (the seed is each job's own).
    strip = lambda p: {k: v for k, v in p.items() if k != "seed"}  # noqa: E731
    assert [strip(r.params) for r in through_engine] == [strip(r.params) for r in in_worker]
    # Two copies of one model with the same seeds answer alike: such pairs are not opened, on either path.
    opened = session.exec(select(Comparison).where(Comparison.job_id == job_id)).all()
    assert all(
        session.get(Response, c.response_a_id).text != session.get(Response, c.response_b_id).text for c in opened
    )


def test_the_engine_gets_concurrent_requests_with_the_jobs_sampling(
    settings, session, fake_engine, tiny_copies, monkeypatch
):
    fake_engine.delay_s = 0.05
    _world(session, tiny_copies[:1], n_prompts=8)
    monkeypatch.setattr(settings, "inference_url", fake_engine.url)
    monkeypatch.setattr(settings, "inference_concurrency", 4)
    _, responses = _job(session, settings, temperature=0.7, max_new_tokens=5)
    assert len(responses) == 16 and fake_engine.max_in_flight == 4
    sent = fake_engine.requests
    assert {r["temperature"] for r in sent} == {0.7} and {r["max_tokens"] for r in sent} == {5}
    assert len({r["seed"] for r in sent}) == 16  # every sample its own seed
    assert all(not r.finished for r in responses)  # cut at max_tokens ("length"), as the stored flag says
