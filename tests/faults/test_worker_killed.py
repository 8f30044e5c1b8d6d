"""A whole worker killed (SIGKILL of its process group) while its run has a finished but
unregistered model on disk: the run ends ``failed``, no half checkpoint is left or
registered, and the other worker goes on.

Killing only the trainer process (the worker survives and records the failure itself)
is covered by ``tests/integration/test_loop_with_worker.py``. Here nobody is left to
record anything: the run's heartbeat stops, and the surviving worker's periodic reaper
(``workers/reaper.py``) fails it after ``RLHF_HEARTBEAT_TIMEOUT_S``.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from sqlmodel import select

from rlhf import db
from rlhf.models import Checkpoint, JobStatus, TrainingRun
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.prompts import PromptRecord, import_records
from rlhf.services.simulate import simulate
from rlhf.settings import get_settings, reset_settings_cache
from tests import factories
from tests.conftest import _truncate_all
from tests.faults.conftest import wait_until
from tests.integration.conftest import Env, start_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HEARTBEAT_TIMEOUT_S = 4


@pytest.fixture
def two_workers(postgres_db, private_redis, tmp_path, tiny_model_dir, monkeypatch):
    _truncate_all(postgres_db)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = Env(data_dir, postgres_db, private_redis.url)
    env.vars["RLHF_HEARTBEAT_TIMEOUT_S"] = str(HEARTBEAT_TIMEOUT_S)
    # This process queues runs, as the web app would: the same settings as the workers.
    for key in ("RLHF_DATA_DIR", "RLHF_DATABASE_URL", "RLHF_BROKER_URL", "RLHF_SECRET_KEY", "RLHF_HEARTBEAT_TIMEOUT_S"):
        monkeypatch.setenv(key, env.vars[key])
    reset_settings_cache()
    import workers.celery_app as celery_app

    monkeypatch.setattr(celery_app, "app", celery_app.make_app())
    with db.session_scope(db.get_engine(postgres_db)) as s:
        register_checkpoint(session=s, path=str(tiny_model_dir), name="tiny", serve=True)
        factories.comparisons(s, [("Yes, please sit.", "Sit."), ("Wait.", "Please wait.")] * 6)
        simulate(session=s, rule="contains:please")
        # Held-out prompts make the evaluation after training take a few seconds, with the
        # trained model already saved under its temporary name: the window to kill in.
        import_records(
            session=s,
            records=[
                PromptRecord(messages=[{"role": "user", "content": f"Tell me {i}."}], tags=["heldout"])
                for i in range(16)
            ],
        )
    workers = []
    try:
        workers = [start_worker(env, tmp_path / f"worker-{i}.log", queues="train") for i in (1, 2)]
        yield env, workers
    finally:
        for proc in workers:
            stop_worker(proc)
        for i in (1, 2):
            log = tmp_path / f"worker-{i}.log"
            if log.exists():
                print(f"--- worker {i} ---\n{log.read_text()[-2500:]}")
        reset_settings_cache()


def _submit(**fields) -> int:
    from rlhf.jobs.submit import submit_run
    from workers.dispatch import job_queue

    with db.session_scope(db.get_engine(get_settings().database_url)) as s:
        return submit_run(session=s, queue=job_queue(), algorithm="dpo", **fields).id


def _run(run_id: int) -> TrainingRun:
    with db.session_scope(db.get_engine(get_settings().database_url)) as s:
        return s.get(TrainingRun, run_id)


def _trainer(run_id: int) -> psutil.Process | None:
    for p in psutil.process_iter(["cmdline"]):
        if "rlhf.training.child" in " ".join(p.info["cmdline"] or []) and f"run-{run_id}/" in " ".join(
            p.info["cmdline"]
        ):
            return p
    return None


def test_worker_killed_mid_run_fails_the_run_and_leaves_no_half_checkpoint(two_workers):
    env, workers = two_workers
    checkpoints = env.data_dir / "checkpoints"
    run_id = _submit(params={"steps": 20, "eval_samples": 8})

    def half_checkpoint():
        return [p for p in checkpoints.glob(f".tmp-run{run_id}-*") if (p / "config.json").exists()]

    wait_until(
        lambda: half_checkpoint() or _run(run_id).status.finished,
        240,
        "the trainer never saved its model",
        interval=0.02,
    )
    trainer = _trainer(run_id)
    assert trainer is not None and half_checkpoint(), f"the run ended before the kill: {_run(run_id).status}"
    owner = next(w for w in workers if os.getpgid(trainer.parent().pid) == w.pid)
    survivor = next(w for w in workers if w is not owner)
    os.killpg(owner.pid, signal.SIGKILL)  # the worker, its pool process: everything but the trainer's own session
    killed_at = time.monotonic()
    owner.wait(10)

    # The trainer dies with its worker (it must not keep a GPU busy as an orphan) ...
    wait_until(
        lambda: not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE,
        10,
        "the trainer outlived its worker",
    )
    # ... and the surviving worker's reaper fails the run once its heartbeat is stale.
    wait_until(
        lambda: _run(run_id).status is not JobStatus.running,
        HEARTBEAT_TIMEOUT_S + 20,
        "the run stayed 'running' after its worker died",
    )
    reaped_after = time.monotonic() - killed_at
    run = _run(run_id)
    print(
        f"run {run_id}: failed {reaped_after:.1f} s after its worker was killed "
        f"(heartbeat timeout {HEARTBEAT_TIMEOUT_S} s)"
    )
    assert run.status is JobStatus.failed and "stopped reporting" in run.error
    assert run.output_checkpoint_id is None
    with db.session_scope(db.get_engine(get_settings().database_url)) as s:
        assert s.exec(select(Checkpoint).where(Checkpoint.run_id == run_id)).all() == []
    assert not (checkpoints / f"dpo-run{run_id}").exists()
    assert not half_checkpoint() and not list(checkpoints.glob(f".tmp-run{run_id}-*")), "half checkpoint left"

    # The surviving worker takes the next run to success; the killed one stays failed.
    assert survivor.poll() is None
    next_id = _submit(params={"steps": 2, "eval_samples": 0})
    wait_until(lambda: _run(next_id).status.finished, 240, "the next run did not finish")
    assert _run(next_id).status is JobStatus.succeeded, _run(next_id).error
    assert _run(run_id).status is JobStatus.failed
