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


def test_demo_serves_comparisons_to_the_printed_rater(tmp_path, tiny_model_dir):
    data_dir = tmp_path / "demo"
    # The demo builds the tiny model on first use; hand it the one this session already built.
    shutil.copytree(tiny_model_dir, data_dir / "checkpoints" / "tiny-base")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLHF_")}
    proc = subprocess.Popen([sys.executable, "-m", "rlhf_cli.main", "demo", "--data-dir", str(data_dir),
                             "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
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
