"""Scale-out: two real `rlhf worker` processes on one Redis and one PostgreSQL share the work.

This is the deployment with several worker machines in miniature: ten generation jobs,
each must run exactly once, and both workers must take some.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import sqlalchemy as sa

from rlhf import db
from rlhf.models import GenerationJob, JobStatus
from rlhf.settings import reset_settings_cache
from tests.conftest import _truncate_all, redis_database
from tests.integration.conftest import Env, start_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JOBS = 10
PROMPTS = 4
LIMIT = 2  # prompts per job
PER = 2  # samples per prompt: one checkpoint serving, so two samples make one pair


@pytest.fixture
def broker8():
    url, client = redis_database(8)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def env(postgres_db, broker8, tmp_path, tiny_model_dir, monkeypatch):
    _truncate_all(postgres_db)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = Env(data_dir, postgres_db, broker8)
    env.rlhf("checkpoints", "add", str(tiny_model_dir), "--name", "tiny", "--serve")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"Say something about topic {i}."}) + "\n" for i in range(PROMPTS))
    )
    env.rlhf("prompts", "import", str(prompts))
    # This process queues the jobs, as the web app would: same settings as the workers.
    for key in ("RLHF_DATA_DIR", "RLHF_DATABASE_URL", "RLHF_BROKER_URL", "RLHF_SECRET_KEY"):
        monkeypatch.setenv(key, env.vars[key])
    reset_settings_cache()
    import workers.celery_app as celery_app

    monkeypatch.setattr(celery_app, "app", celery_app.make_app())  # bound to this test's broker
    yield env
    reset_settings_cache()


def _finished_by(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"generation job (\d+): succeeded", log)]


def test_two_workers_share_the_jobs_and_run_each_once(env, tmp_path):
    from rlhf.jobs.submit import submit_generation
    from workers.dispatch import job_queue

    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    procs = []
    try:
        for log in logs:
            procs.append(start_worker(env, log, queues="generate"))
        engine = db.get_engine(env.vars["RLHF_DATABASE_URL"])
        with db.session_scope(engine) as s:
            ids = [
                submit_generation(session=s, queue=job_queue(), limit=LIMIT, per_checkpoint=PER).id for _ in range(JOBS)
            ]
        deadline = time.monotonic() + 300
        while True:
            with db.session_scope(engine) as s:
                statuses = {j.id: j.status for j in s.query(GenerationJob).filter(GenerationJob.id.in_(ids))}
            if all(st.finished for st in statuses.values()):
                break
            assert time.monotonic() < deadline, f"jobs not finished after 300 s: {statuses}"
            time.sleep(1)
    finally:
        for proc in procs:
            stop_worker(proc)
    texts = [log.read_text() for log in logs]
    assert all(st is JobStatus.succeeded for st in statuses.values()), (statuses, [t[-3000:] for t in texts])

    per_worker = [_finished_by(t) for t in texts]
    ran = sorted(per_worker[0] + per_worker[1])
    assert ran == sorted(ids), f"each job must run exactly once: {per_worker}"
    assert all(per_worker), f"both workers must take jobs: {per_worker}"

    with engine.connect() as conn:
        responses = dict(
            conn.execute(
                sa.text("SELECT job_id, count(*) FROM response WHERE job_id IS NOT NULL GROUP BY job_id")
            ).all()
        )
        pairs = conn.execute(
            sa.text("SELECT response_a_id, response_b_id, job_id FROM comparison WHERE job_id IS NOT NULL")
        ).all()
        results = dict(conn.execute(sa.text("SELECT id, result FROM generationjob")).all())
    # A job run twice would have sampled (and stored) twice.
    assert responses == {job_id: LIMIT * PER for job_id in ids}
    assert len({(a, b) for a, b, _ in pairs}) == len(pairs), "a comparison was opened twice"
    for job_id in ids:
        result = results[job_id] if isinstance(results[job_id], dict) else json.loads(results[job_id])
        assert sum(1 for *_, j in pairs if j == job_id) == result["comparisons"]
