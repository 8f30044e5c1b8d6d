"""A Celery worker killed (SIGKILL) in the middle of a generation job: the job ends ``failed``.

The job waits on an inference engine that accepts connections and never answers, so it is
certainly mid-sampling when its worker dies. While the worker lives, its heartbeat keeps
the job ``running`` past the timeout, under another worker's reaper; once it is killed,
that reaper fails the job with the reason, and nothing the job sampled is stored.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from sqlmodel import func, select

from rlhf import db
from rlhf.models import Comparison, GenerationJob, JobStatus, Response
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.prompts import PromptRecord, import_records
from rlhf.settings import get_settings, reset_settings_cache
from tests.conftest import _truncate_all
from tests.faults.conftest import wait_until
from tests.integration.conftest import Env, start_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HEARTBEAT_TIMEOUT_S = 4


@pytest.fixture
def silent_engine():
    """A port that completes TCP handshakes (the kernel's backlog) and never sends a byte back."""
    server = socket.create_server(("127.0.0.1", 0), backlog=128)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def _job(job_id: int) -> GenerationJob:
    with db.session_scope(db.get_engine(get_settings().database_url)) as s:
        return s.get(GenerationJob, job_id)


def test_worker_killed_mid_generation_fails_the_job(
    postgres_db, private_redis, tmp_path, tiny_model_dir, silent_engine, monkeypatch
):
    _truncate_all(postgres_db)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = Env(data_dir, postgres_db, private_redis.url)
    env.vars.update(RLHF_HEARTBEAT_TIMEOUT_S=str(HEARTBEAT_TIMEOUT_S), RLHF_INFERENCE_URL=silent_engine)
    for key in (
        "RLHF_DATA_DIR",
        "RLHF_DATABASE_URL",
        "RLHF_BROKER_URL",
        "RLHF_SECRET_KEY",
        "RLHF_HEARTBEAT_TIMEOUT_S",
        "RLHF_INFERENCE_URL",
    ):
        monkeypatch.setenv(key, env.vars[key])
    reset_settings_cache()
    import workers.celery_app as celery_app

    monkeypatch.setattr(celery_app, "app", celery_app.make_app())
    with db.session_scope(db.get_engine(postgres_db)) as s:
        register_checkpoint(session=s, path=str(tiny_model_dir), name="tiny", serve=True)
        import_records(
            session=s, records=[PromptRecord(messages=[{"role": "user", "content": f"Say {i}."}]) for i in range(4)]
        )
    logs = {name: tmp_path / f"{name}.log" for name in ("sampler", "survivor")}
    # The survivor takes no generation jobs: the job is certainly the sampler's.
    survivor = start_worker(env, logs["survivor"], queues="train")
    sampler = start_worker(env, logs["sampler"], queues="generate")
    try:
        from rlhf.jobs.submit import submit_generation
        from workers.dispatch import job_queue

        with db.session_scope(db.get_engine(postgres_db)) as s:
            job_id = submit_generation(session=s, queue=job_queue(), limit=4).id
        wait_until(lambda: _job(job_id).status is JobStatus.running, 60, "the sampler never took the job")

        # Alive, the sampler keeps the job alive past the timeout, under the survivor's reaper.
        time.sleep(2.5 * HEARTBEAT_TIMEOUT_S)
        job = _job(job_id)
        assert job.status is JobStatus.running, job.error
        beat_age = time.time() - job.heartbeat_at.timestamp()
        assert beat_age < HEARTBEAT_TIMEOUT_S, f"the last heartbeat is {beat_age:.1f} s old"

        os.killpg(sampler.pid, signal.SIGKILL)  # the worker and its pool process, mid-request
        killed_at = time.monotonic()
        sampler.wait(10)
        wait_until(
            lambda: _job(job_id).status is not JobStatus.running,
            HEARTBEAT_TIMEOUT_S + 30,
            "the job stayed 'running' after its worker died",
        )
        print(
            f"generation job {job_id}: failed {time.monotonic() - killed_at:.1f} s after its worker was killed "
            f"(heartbeat timeout {HEARTBEAT_TIMEOUT_S} s)"
        )
        job = _job(job_id)
        assert job.status is JobStatus.failed and "stopped reporting" in job.error
        with db.session_scope(db.get_engine(postgres_db)) as s:
            assert s.exec(select(func.count()).select_from(Response)).one() == 0
            assert s.exec(select(func.count()).select_from(Comparison)).one() == 0
        assert survivor.poll() is None
    finally:
        for proc in (sampler, survivor):
            stop_worker(proc)
        for name, log in logs.items():
            if log.exists():
                print(f"--- {name} ---\n{log.read_text()[-2500:]}")
        reset_settings_cache()
