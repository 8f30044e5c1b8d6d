"""The README's first command: `rlhf demo` serves a working app on a fresh data dir."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_demo(env: dict, port: int, *args: str) -> tuple[subprocess.Popen, str]:
    """``rlhf demo`` in the background; returns once it printed where to open it, with what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlhf_cli.main", "demo", "--host", "127.0.0.1", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    deadline = time.monotonic() + 300
    while not any("open http://" in line for line in output):
        if time.monotonic() > deadline or proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            raise AssertionError("".join(output))
        output.append(proc.stdout.readline())
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    return proc, "".join(output)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def test_demo_keeps_its_data_dir_logins_and_key_across_restarts(tmp_path, tiny_model_dir):
    data_dir = tmp_path / "from-env"
    shutil.copytree(tiny_model_dir, data_dir / "checkpoints" / "tiny-base")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RLHF_")}, "RLHF_DATA_DIR": str(data_dir)}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc, first = _start_demo(env, port)
    try:
        assert f"demo data in {data_dir}" in first and (data_dir / "rlhf.db").is_file()
        assert oct((data_dir / "demo-credentials.json").stat().st_mode & 0o777) == "0o600"
        password = re.search(r"rater\s+rater / (\S+)", first).group(1)
        login = httpx.post(f"{base}/login", data={"username": "rater", "password": password}, headers={"Origin": base})
        cookie = login.cookies["rlhf_session"]
    finally:
        _stop(proc)
    proc, again = _start_demo(env, port)
    try:
        assert re.search(r"rater\s+rater / (\S+)", again).group(1) == password  # printed again, unchanged
        assert httpx.get(f"{base}/api/me", auth=("rater", password)).status_code == 200
        still = httpx.get(f"{base}/api/me", cookies={"rlhf_session": cookie})
        assert still.status_code == 200 and still.json()["name"] == "rater"  # the session key was kept
    finally:
        _stop(proc)


def test_demo_serves_comparisons_to_the_printed_rater(tmp_path, tiny_model_dir):
    data_dir = tmp_path / "demo"
    # The demo builds the tiny model on first use; hand it the one this session already built.
    shutil.copytree(tiny_model_dir, data_dir / "checkpoints" / "tiny-base")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLHF_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlhf_cli.main",
            "demo",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 300
        while not any("open http://" in line for line in output):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(output)
            output.append(proc.stdout.readline())
        text = "".join(output)
        rater_password = re.search(r"rater\s+rater / (\S+)", text).group(1)
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        health = httpx.get(f"{base}/api/health").json()
        assert health["database"] == "ok" and health["broker"] == "embedded"
        nxt = httpx.get(f"{base}/api/comparisons/next", auth=("rater", rater_password))
        assert nxt.status_code == 200, nxt.text
        body = nxt.json()
        assert body["a"] != body["b"] and body["prompt"]
        assert httpx.get(f"{base}/api/comparisons/next", auth=("rater", "wrong-password")).status_code == 401
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
