"""``rlhf serve --workers N``: N web processes, each a uvicorn server on a port of its own.

Gradio keeps a page's queue and its event stream (``POST …/queue/join``, then the
server-sent events of ``GET …/queue/data``) in the memory of the process that took the
join. uvicorn's own ``--workers`` shares one socket between its processes, so the kernel
would hand one browser's requests to any of them and break the page. Here process *i*
listens on ``port + i`` instead, and the reverse proxy in front picks the process by the
session cookie (``deploy/nginx/rlhf.conf``: ``hash $cookie_rlhf_session consistent``), so a
browser always returns to the process that holds its queue.

Everything else a rater relies on is in PostgreSQL: leases, votes and their undo window,
the login throttle, the arena's rate limit, login sessions. A process that dies loses only
the pages it was serving; the proxy sends their next request to another process, where the
same cookie is valid, and the rater carries on where they were after a reload.

The parent applies the migrations once, starts the processes, restarts one that exits, and
stops them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)

MAX_WORKERS = 64
APP_FACTORY = "rlhf_cli.web_workers:build_app"
# Each response of a process started by ``--workers`` names it: which one served a request.
WORKER_HEADER = "X-RLHF-Worker"
_INDEX_ENV = "RLHF_WEB_PROCESS"
# A process that exits sooner than this after its start is restarted after a growing pause
# (up to the longest), so one that cannot start (a port taken) does not spin.
_STABLE_S = 10.0
_LONGEST_PAUSE_S = 30.0
# How long a stopping process may take to finish open requests and event streams.
_STOP_GRACE_S = 20.0


def refusals(settings: Settings) -> list[str]:
    """Why these settings cannot be served by several processes: one line per missing piece."""
    reasons = []
    if settings.database_url.startswith("sqlite"):
        reasons.append(
            "RLHF_DATABASE_URL is SQLite: its hand-out lock holds within one process, so two processes "
            "could lease one pair to two raters; use PostgreSQL"
        )
    if settings.embedded:
        reasons.append(
            "RLHF_BROKER_URL is not set: every process would run its own embedded worker on the same "
            "queued jobs; set it to Redis and run `rlhf worker`"
        )
    if not settings.inference_url:
        reasons.append(
            "RLHF_INFERENCE_URL is not set: every process would start its own inference engine, a copy "
            "of each model in memory per process; point it at one OpenAI-compatible engine"
        )
    return reasons


def build_app() -> ASGIApp:
    """uvicorn's app factory for one of the processes: the web app on the broker's job queue."""
    from feedback_ui.app import create_app  # heavy: loads FastAPI and the whole web app
    from workers.dispatch import job_queue

    settings = get_settings()
    app = create_app(settings, jobs=job_queue(settings))
    index = os.environ.get(_INDEX_ENV)
    return app if index is None else WorkerHeader(app, f"{index}; pid={os.getpid()}")


class WorkerHeader:
    """Adds ``X-RLHF-Worker: <index>; pid=<pid>`` to every HTTP response: an operator (or a test)
    sees which process answered, and that a restarted one is a new process."""

    def __init__(self, app: ASGIApp, value: str):
        self.app, self.value = app, value.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (WORKER_HEADER.lower().encode(), self.value)]
            await send(message)

        await self.app(scope, receive, send_with_header)


def run_child(host: str, port: int) -> None:
    """One process: uvicorn on ``host:port`` with the app from :func:`build_app`."""
    import uvicorn

    from rlhf import logging_setup

    settings = get_settings()
    logging_setup.configure_logging(settings.log_level, json=settings.log_format == "json")
    _die_with_parent()
    sys.setswitchinterval(0.0005)  # as in the single process: see rlhf_cli.web.serve
    config = uvicorn_config(APP_FACTORY, settings, host, port, factory=True)
    uvicorn.Server(config).run()


def uvicorn_config(app, settings, host: str, port: int, *, factory: bool = False):
    """How ``rlhf serve`` runs uvicorn: forwarded headers believed only from ``RLHF_FORWARDED_ALLOW_IPS``.

    A proxy in that list must overwrite ``X-Forwarded-For`` (nginx: ``proxy_set_header
    X-Forwarded-For $remote_addr``); one that passes on what the client sent lets the
    client choose the address the app logs. ``app`` may be an import string; with
    ``factory`` it names a function that builds the app.
    """
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        factory=factory,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
    )  # keep our log format (JSON lines when RLHF_LOG_FORMAT=json)


def _die_with_parent() -> None:
    """Linux: end this process when the parent dies, even by SIGKILL, so no orphan keeps the port."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent was gone before the line above
        sys.exit(0)


@dataclass
class _Child:
    index: int
    port: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float = 0.0


class Supervisor:
    """Starts the processes, restarts one that exits, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, host: str, port: int, workers: int):
        self.host = host
        self.children = [_Child(index=i, port=port + i) for i in range(workers)]
        self.stopping = False

    def _start(self, child: _Child) -> None:
        env = {**os.environ, _INDEX_ENV: str(child.index)}
        argv = [sys.executable, "-m", APP_FACTORY.partition(":")[0], str(child.index), self.host, str(child.port)]
        child.proc = subprocess.Popen(argv, env=env)
        child.started = time.monotonic()
        log.info("web process %d: port %d, pid %d", child.index, child.port, child.proc.pid)

    def _on_signal(self, signum: int, _frame) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for child in self.children:
            self._start(child)
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None:
                    self._exited(child, now)
                if child.proc is None and now >= child.restart_at and not self.stopping:
                    self._start(child)
            time.sleep(0.2)
        self.stop()
        return 0

    def _exited(self, child: _Child, now: float) -> None:
        assert child.proc is not None
        code = child.proc.returncode
        quick = now - child.started < _STABLE_S
        child.quick_exits = child.quick_exits + 1 if quick else 0
        pause = min(2.0 ** (child.quick_exits - 1), _LONGEST_PAUSE_S) if quick else 0.0
        log.warning(
            "web process %d (port %d, pid %d) exited with %s; restarting%s",
            child.index,
            child.port,
            child.proc.pid,
            code,
            f" in {pause:g} s" if pause else "",
        )
        child.proc, child.restart_at = None, now + pause

    def stop(self) -> None:
        """SIGTERM to every process (uvicorn finishes open requests), SIGKILL to any still there after the grace."""
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + _STOP_GRACE_S
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("web process pid %d did not stop in %g s; killing it", proc.pid, _STOP_GRACE_S)
                proc.kill()
                proc.wait()


if __name__ == "__main__":  # python -m rlhf_cli.web_workers INDEX HOST PORT: one process, started by Supervisor
    # INDEX is in the command line for `ps` to show; the process reads it from RLHF_WEB_PROCESS.
    run_child(sys.argv[2], int(sys.argv[3]))
