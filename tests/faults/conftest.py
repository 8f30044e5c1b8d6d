"""Private servers to break: a PostgreSQL cluster and a Redis of the test's own.

Fault tests stop, kill and restart these; the machine's shared PostgreSQL and Redis,
which other test runs use at the same time, are never touched. Each server lives in a
temporary folder on a free port and is stopped in a ``finally`` whatever the test does.
A missing server binary fails the test with a plain message (never a skip).

PostgreSQL refuses to run as root; as root the cluster is created and run as the
``postgres`` system user (``runuser``), in a folder that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from rlhf import db


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``condition`` until true; returns the seconds it took, fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} (waited {timeout} s)")
        time.sleep(interval)
    return time.monotonic() - start


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
    if not found:
        pytest.fail(
            f"PostgreSQL's {name} is required for the fault tests and was not found (apt-get install postgresql)"
        )
    return found[-1]


class PrivatePostgres:
    """A throwaway PostgreSQL cluster: ``start``, ``stop(mode)``, ``restart``; ``url`` for SQLAlchemy."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="rlhf-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if self.as_root:
            subprocess.run(["chown", "postgres:postgres", str(self.root)], check=True)
            self.root.chmod(0o755)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        full = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(cmd)
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}\n"
                f"{self.log.read_text() if self.log.exists() else ''}"
            )
        return proc

    def init(self) -> None:
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clients are disconnected, a clean shutdown; ``immediate``: as if the server crashed."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0

    def cleanup(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A throwaway ``redis-server`` on its own port; ``stop`` kills it, ``start`` brings it back on the same port.

    ``appendonly``: keep queued jobs across a restart, as the deployment's Redis does.
    """

    def __init__(self, appendonly: bool = False) -> None:
        self.binary = shutil.which("redis-server")
        if not self.binary:
            pytest.fail("redis-server is required for the fault tests and was not found (apt-get install redis)")
        self.dir = Path(tempfile.mkdtemp(prefix="rlhf-redis-"))
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.3, socket_timeout=0.3).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.dir),
                *persistence,
            ],
            stdout=(self.dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self.ping, 10, f"private redis-server on port {self.port} did not answer")

    def stop(self) -> None:
        """SIGKILL: the broker vanishes as in a crash (with appendonly, every write already reached the disk)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster with the schema migrated."""
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
        db.migrate(pg.url)
        yield pg
    finally:
        db.get_engine(pg.url).dispose()
        pg.cleanup()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(appendonly=True)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def count(url: str, sql: str, **params) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar_one()
    finally:
        engine.dispose()


ROOT = Path(__file__).resolve().parents[2]


class Server:
    """``rlhf serve`` in a subprocess: real uvicorn, real sockets, its own database."""

    def __init__(self, tmp_path: Path, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log_path = tmp_path / f"server-{self.port}.log"
        data_dir = tmp_path / "data"
        data_dir.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "RLHF_DATA_DIR": str(data_dir),
            "RLHF_DATABASE_URL": database_url,
            "RLHF_BROKER_URL": "",
            "RLHF_SECRET_KEY": "fault-test-secret-key",
            "RLHF_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        self.cwd = tmp_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        import sys

        import httpx

        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rlhf_cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
            )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"rlhf serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.base_url}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout, f"rlhf serve did not answer:\n{self.log_tail()}", interval=0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


@pytest.fixture
def serve(tmp_path) -> Iterator:
    """``serve(database_url, **env)`` starts ``rlhf serve``; every server is stopped after the test."""
    servers: list[Server] = []

    def start(database_url: str, **env: str) -> Server:
        server = Server(tmp_path, database_url, **env)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
            print(f"--- server log ---\n{server.log_tail()}")
