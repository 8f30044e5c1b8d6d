"""Two web processes behind nginx, as an operator runs them: ``rlhf serve --workers 2`` on
PostgreSQL, a Redis broker and an OpenAI-compatible engine, with Debian's nginx in front using
the project's own configuration (deploy/nginx/rlhf.conf, its ports and paths swapped for
this run's).

One server for the whole folder (starting two web processes takes a while); each test
starts from empty tables. nginx is the system one (``RLHF_TEST_NGINX``, default
``/usr/sbin/nginx``; scripts/services installs it), run in the foreground with every file it
writes in a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from rlhf import db
from tests.browser.conftest import new_page  # noqa: F401  (the browser test's pages)
from tests.conftest import _postgres_database, _truncate_all, redis_database
from tests.factories import free_port
from tests.fake_engine import FakeEngine

ROOT = Path(__file__).resolve().parents[2]
NGINX = os.environ.get("RLHF_TEST_NGINX", "/usr/sbin/nginx")
PASSWORD = "correct-horse-battery"
WORKER_HEADER = "x-rlhf-worker"
_STARTED = re.compile(r"web process (\d+): port (\d+), pid (\d+)")


def _two_free_ports() -> int:
    """A port P such that P and P+1 are both free (``--workers 2`` listens on both)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("found no two free neighbouring ports")


def worker_of(response: httpx.Response) -> tuple[int, int]:
    """(process index, pid) from the ``X-RLHF-Worker: 1; pid=4312`` header of a response."""
    index, _, pid = response.headers[WORKER_HEADER].partition("; pid=")
    return int(index), int(pid)


@dataclass
class Replicas:
    base_url: str  # nginx
    ports: list[int]  # the web processes themselves
    database_url: str
    log_path: Path
    nginx_log: Path

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with db.session_scope(db.get_engine(self.database_url)) as s:
            yield s

    def log_tail(self, n: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def pids(self) -> dict[int, int]:
        """The live pid of each process index, from the parent's log (the latest start wins)."""
        return {int(i): int(pid) for i, _, pid in _STARTED.findall(self.log_path.read_text(errors="replace"))}

    def wait_until_both_answer(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=3).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"web process on port {port} did not answer within {timeout} s:\n{self.log_tail()}")
                time.sleep(0.3)


def nginx_config(tmp: Path, listen: int, ports: list[int]) -> Path:
    """deploy/nginx/rlhf.conf with this run's ports and paths, inside a minimal nginx.conf."""
    site = (ROOT / "deploy/nginx/rlhf.conf").read_text()
    swaps = [
        (r"server 127\.0\.0\.1:7860 ", f"server 127.0.0.1:{ports[0]} "),
        (r"server 127\.0\.0\.1:7861 ", f"server 127.0.0.1:{ports[1]} "),
        (r"listen 80;", f"listen 127.0.0.1:{listen};"),
        (r"include /etc/nginx/snippets/rlhf-proxy\.conf;", f"include {ROOT / 'deploy/nginx/rlhf-proxy.conf'};"),
        (r"/var/log/nginx/rlhf-access\.log", str(tmp / "access.log")),
    ]
    for pattern, value in swaps:
        site, n = re.subn(pattern, value, site)
        assert n == 1, f"deploy/nginx/rlhf.conf no longer has {pattern!r} once: update this fixture"
    (tmp / "rlhf.conf").write_text(site)
    temp = "\n".join(
        f"  {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # workers must write in this run's folder
        + f"worker_processes 1;\npid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'} warn;\n"
        + "events { worker_connections 1024; }\n"
        + f"http {{\n{temp}\n  include {tmp / 'rlhf.conf'};\n}}\n"
    )
    return conf


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 40) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="package")
def replicas(tmp_path_factory) -> Iterator[Replicas]:
    if not Path(NGINX).exists():
        pytest.fail(f"these tests need nginx at {NGINX} (scripts/services installs it; or set RLHF_TEST_NGINX)")
    tmp = tmp_path_factory.mktemp("replicas")
    broker, client = redis_database(11)
    client.flushdb()
    engine = FakeEngine(delay_s=0.05)  # answers that stream for a second or two
    stop_engine = engine.serve()
    with _postgres_database("rlhf_replicas") as url:
        port = _two_free_ports()
        env = {
            **os.environ,
            "RLHF_DATA_DIR": str(tmp / "data"),
            "RLHF_DATABASE_URL": url,
            "RLHF_BROKER_URL": broker,
            "RLHF_INFERENCE_URL": engine.url,
            "RLHF_SECRET_KEY": "replica-test-secret-key",
            "RLHF_LOG_LEVEL": "INFO",
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT),
        }
        log_path = tmp / "serve.log"
        with log_path.open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "rlhf_cli.main", "serve", "--workers", "2", "--host", "127.0.0.1"]
                + ["--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                start_new_session=True,
            )
        listen = free_port()
        conf = nginx_config(tmp, listen, [port, port + 1])
        nginx_log = tmp / "nginx.out"
        with nginx_log.open("wb") as out:
            nginx = subprocess.Popen(
                [NGINX, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        reps = Replicas(f"http://127.0.0.1:{listen}", [port, port + 1], url, log_path, tmp / "error.log")
        try:
            if serve.poll() is not None:
                pytest.fail(f"rlhf serve exited with {serve.returncode}:\n{reps.log_tail()}")
            reps.wait_until_both_answer()
            deadline = time.monotonic() + 30
            while True:
                if nginx.poll() is not None:
                    pytest.fail(f"nginx exited with {nginx.returncode}:\n{nginx_log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{reps.base_url}/api/health", timeout=3).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not answer within 30 s:\n{(tmp / 'error.log').read_text()}")
                time.sleep(0.2)
            yield reps
        finally:
            _stop(nginx, signal.SIGQUIT)
            children = reps.pids().values()
            serve.terminate()  # the parent alone: it stops its processes
            try:
                stopped = serve.wait(60)
            except subprocess.TimeoutExpired:
                stopped = None
            left = [pid for pid in children if _alive(pid)]
            _stop(serve, signal.SIGKILL)
            db.get_engine(url).dispose()
            print(f"--- rlhf serve --workers 2 ---\n{reps.log_tail()}")
            if (tmp / "error.log").exists():
                print(f"--- nginx errors ---\n{(tmp / 'error.log').read_text()[-3000:]}")
            stop_engine()
            client.flushdb()
        assert stopped == 0 and not left, f"SIGTERM to rlhf serve: exit {stopped}, processes left {left}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def fresh(replicas) -> Replicas:
    """The shared server, on empty tables; cheap password hashes so that many logins stay fast."""
    from argon2 import PasswordHasher

    from rlhf.services import users

    _truncate_all(replicas.database_url)
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # the hash names its own cost
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(users, "_hasher", hasher)
        yield replicas


def login(client: httpx.Client, name: str) -> None:
    """The /login form, as a browser sends it: the answer sets the session cookie on ``client``."""
    r = client.post("/login", data={"username": name, "password": PASSWORD, "next": "/"})
    assert r.status_code == 303, r.text
    assert "rlhf_session" in client.cookies
