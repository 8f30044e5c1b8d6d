"""The embedded engine: ``transformers serve`` as a child process of the app.

Started when first needed on a free loopback port, health-checked before use, restarted
once when found dead (a crash right after a restart is not retried in a loop), and
stopped with the app. It loads each checkpoint directory named by its path on first
use; :meth:`ManagedEngine.preload` asks for that through ``/load_model``, which loads in a
thread, instead of inside a chat request, whose cold load blocks the engine's event loop.

What it does not do: requests to one model run one at a time (a sequential ``generate``
per model), so two answers of one checkpoint stream one after the other. Concurrency
is the GPU engines' job (vLLM, SGLang; see deploy/README.md).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from rlhf.errors import InferenceUnavailable

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# A second death within this long of a restart is a crash loop: refuse instead of restarting again.
CRASH_LOOP_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ManagedEngine:
    """One ``transformers serve`` process, owned by the app that made this object."""

    def __init__(
        self,
        *,
        log_path: Path,
        model_timeout_s: int = 3600,
        startup_timeout_s: float = 180.0,
        env: dict[str, str] | None = None,
    ):
        self.log_path = Path(log_path)
        self.model_timeout_s = model_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.url = ""
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._started_at = 0.0
        self._loaded: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ensure(self) -> str:
        """The engine's base URL, starting it (or restarting it once after a death) as needed."""
        with self._lock:
            if self._stopped:
                raise InferenceUnavailable("the embedded inference engine has been stopped with the app")
            if self.alive():
                return self.url
            if self._proc is not None:
                code = self._proc.poll()
                if time.monotonic() - self._started_at < CRASH_LOOP_S and self.starts > 1:
                    raise InferenceUnavailable(
                        f"the embedded inference engine died again (exit code {code}) "
                        f"soon after a restart; see {self.log_path}"
                    )
                log.warning("the embedded inference engine died (exit code %s); restarting it", code)
            self._start()
            return self.url

    def _command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--model-timeout",
            str(self.model_timeout_s),
            "--log-level",
            "info",
        ]

    def _start(self) -> None:
        port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self._command(port),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.url, self._loaded, self._started_at = f"http://{HOST}:{port}", set(), time.monotonic()
        self.starts += 1
        log.info(
            "started the embedded inference engine (pid %s) at %s; log: %s", self._proc.pid, self.url, self.log_path
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise InferenceUnavailable(
                    f"the embedded inference engine exited at start (code {self._proc.returncode}); see {self.log_path}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self._terminate()
        raise InferenceUnavailable(
            f"the embedded inference engine did not become healthy in "
            f"{self.startup_timeout_s:.0f} s; see {self.log_path}"
        )

    def preload(self, models: list[str]) -> None:
        """Load these checkpoints now, each once per engine process (blocking until loaded)."""
        url = self.ensure()
        for model in models:
            if model in self._loaded:
                continue
            try:
                with httpx.stream(
                    "POST", f"{url}/load_model", json={"model": model}, timeout=self.startup_timeout_s
                ) as response:
                    body = b"".join(response.iter_bytes())
            except httpx.HTTPError as exc:
                raise InferenceUnavailable(f"the embedded inference engine did not load {model}: {exc}") from exc
            if response.status_code != 200 or b'"status": "error"' in body:
                raise InferenceUnavailable(
                    f"the embedded inference engine could not load {model}: {body.decode(errors='replace')[-300:]}"
                )
            self._loaded.add(model)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the engine for good (the app is shutting down)."""
        with self._lock:
            self._stopped = True
            self._terminate()
