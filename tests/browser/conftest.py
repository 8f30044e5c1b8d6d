"""Browser tests: the real web app (``rlhf serve`` in a subprocess) driven by headless Chromium.

Each test gets its own server on a free port and its own SQLite file, copied from the
migrated template, with the embedded worker running (no broker). The test process
writes the state it needs straight into that database with the services and reads
the outcome back from it; the browser only ever talks HTTP to the server.

Chromium is the system one (``RLHF_TEST_CHROMIUM``, default ``/usr/bin/chromium``);
Playwright never downloads a browser here. When ``RLHF_UI_SHOTS`` names a directory,
tests that take screenshots save them there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
from tests.factories import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RLHF_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Server:
    base_url: str
    database_url: str
    data_dir: Path
    log_path: Path

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with db.session_scope(db.get_engine(self.database_url)) as s:
            yield s

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


# The session's one Chromium (``browser``) is in tests/conftest.py: Playwright's sync API runs one
# instance per process, so every folder with browser tests must share it.


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for the server (a test module may override this fixture)."""
    return {}


@pytest.fixture
def server(tmp_path, sqlite_template, server_env) -> Iterator[Server]:
    """``rlhf serve`` on a fresh database; stopped (and its log printed on failure) after the test."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(sqlite_template, data_dir / "rlhf.db")
    url = f"sqlite:///{data_dir / 'rlhf.db'}"
    port = free_port()
    env = {
        **os.environ,
        "RLHF_DATA_DIR": str(data_dir),
        "RLHF_DATABASE_URL": url,
        "RLHF_BROKER_URL": "",
        "RLHF_SECRET_KEY": "browser-test-secret-key",
        "RLHF_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
        **server_env,
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlhf_cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    srv = Server(base_url=f"http://127.0.0.1:{port}", database_url=url, data_dir=data_dir, log_path=log_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"rlhf serve exited with {proc.returncode}:\n{srv.log_tail()}")
            try:
                if httpx.get(f"{srv.base_url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"rlhf serve did not answer within 90 s:\n{srv.log_tail()}")
            time.sleep(0.3)
        yield srv
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        db.get_engine(url).dispose()
        print(f"--- server log ---\n{srv.log_tail()}")


@pytest.fixture
def new_page(browser):
    """Pages in their own browser contexts (separate cookies), closed after the test."""
    contexts = []

    def make(viewport: dict | None = None):
        context = browser.new_context(viewport=viewport or DESKTOP)
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def login(page, server: Server, name: str, password: str = PASSWORD) -> None:
    """Through the /login form, as a person would; returns once the UI has loaded."""
    page.goto(f"{server.base_url}/")
    page.wait_for_url("**/login**")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.base_url}/")
    page.get_by_text(f"Logged in as {name}").wait_for()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("RLHF_UI_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def call_event(server: Server, cookies: list[dict], button_text: str, data: list, timeout: float = 30) -> dict:
    """Send the event behind a button straight to Gradio's queue, as a hand-made request would.

    Returns the final queue message (``success`` and ``output``).
    """
    jar = {c["name"]: c["value"] for c in cookies}
    with httpx.Client(base_url=server.base_url, cookies=jar, timeout=timeout) as client:
        config = client.get("/config").json()
        component = next(
            c["id"]
            for c in config["components"]
            if c.get("type") == "button" and c.get("props", {}).get("value") == button_text
        )
        fn_index = next(
            d["id"] for d in config["dependencies"] if any(t[0] == component and t[1] == "click" for t in d["targets"])
        )
        session_hash = f"crafted{time.monotonic_ns()}"
        joined = client.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": fn_index,
                "session_hash": session_hash,
                "event_data": None,
                "trigger_id": component,
            },
        )
        joined.raise_for_status()
        with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the queue never reported the event as completed")
