"""Fixtures for tests that run the product as users do: the CLI and a real worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import redis_database

ROOT = Path(__file__).resolve().parents[2]
RLHF = [sys.executable, "-m", "rlhf_cli.main"]


@pytest.fixture(scope="module")
def broker_url():
    """A Redis database of its own (index 7), emptied, so queued jobs of other runs cannot leak in."""
    url, client = redis_database(7)
    client.flushdb()
    yield url
    client.flushdb()


class Env:
    """The environment a user's shell would have: settings in RLHF_* variables."""

    def __init__(self, data_dir: Path, database_url: str, broker_url: str = ""):
        self.vars = {
            **os.environ,
            "RLHF_DATA_DIR": str(data_dir),
            "RLHF_DATABASE_URL": database_url,
            "RLHF_BROKER_URL": broker_url,
            "RLHF_SECRET_KEY": "integration-test-secret-key",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT),
        }
        self.data_dir = data_dir

    def rlhf(self, *args: str, check: bool = True, timeout: float = 600, stdin: str | None = None):
        proc = subprocess.run(
            [*RLHF, *args],
            env=self.vars,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            cwd=self.data_dir.parent,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"rlhf {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc


def start_worker(env: Env, log_path: Path, queues: str = "train,generate") -> subprocess.Popen:
    """A real `rlhf worker` process; returns once Celery says it is ready."""
    log = log_path.open("w")
    proc = subprocess.Popen(
        [*RLHF, "worker", "--queues", queues],
        env=env.vars,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=env.data_dir.parent,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{log_path.read_text()}")
        if "ready." in log_path.read_text():
            return proc
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"worker not ready after 60 s:\n{log_path.read_text()}")


def stop_worker(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
