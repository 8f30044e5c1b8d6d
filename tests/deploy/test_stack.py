"""The docker deployment for real: the images built, the compose stack up through
``scripts/stack``, and what only the containers can show, driven over the REST API.

One stack for the module, taken through, in order: healthy after ``up`` (and a second
``up`` reusing what the first built); every app service sees the database, the broker and
the shared data volume; a whole round (prompts → generation on the worker container →
votes → DPO → the new checkpoint serves and its samples come back); the worker's process
killed mid-run (the run is reaped, the restarted worker takes the next one); a restart of
everything that loses nothing; a build that fails shows its step; ``down`` leaves nothing.

The env file sets a short heartbeat timeout so a reaped run is failed within seconds. Build
times and image sizes are printed. Nothing here skips: a missing engine, compose or image
that ``scripts/stack`` cannot make is a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(3000)]

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack"
PORT = int(os.environ.get("RLHF_TEST_STACK_PORT", "17860"))
HEARTBEAT_TIMEOUT_S = 15
STACK_ROOT = Path(os.environ.get("RLHF_STACK_ROOT", "/var/lib/rlhf-stack"))


def _report(config, line: str) -> None:
    """Figures go to the terminal whatever pytest captures."""
    with config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        config.pluginmanager.get_plugin("terminalreporter").write_line(f"[stack] {line}")


def _write_env(path: Path, **extra) -> Path:
    values = {
        "RLHF_SECRET_KEY": secrets.token_urlsafe(32),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "RLHF_ADMIN_USER": "admin",
        "RLHF_ADMIN_PASSWORD": secrets.token_hex(12),
        "RLHF_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
        "RLHF_LOG_FORMAT": "text",
        "WEB_PORT": str(PORT),
        "HF_HUB_OFFLINE": "1",  # no hub here: the inference service loads checkpoints by path
        **extra,
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def _env_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _stack(
    *args: str, env_file: Path, timeout: float = 600, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    action, *rest = args
    proc = subprocess.run(
        [str(STACK), action, "--env-file", str(env_file), *rest],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"scripts/stack {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}{proc.stdout[-2000:]}"
        )
    return proc


def _wait_until(condition, timeout: float, message: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"{message} (waited {timeout:.0f} s)")


class Stack:
    def __init__(self, env_file: Path, url: str):
        self.env_file = env_file
        self.url = url.rstrip("/")
        values = _env_values(env_file)
        self.admin = (values["RLHF_ADMIN_USER"], values["RLHF_ADMIN_PASSWORD"])
        self.engineer = ("engineer", secrets.token_hex(8))
        self.rater = ("rater", secrets.token_hex(8))
        self.state: dict = {}

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return _stack("compose", *args, env_file=self.env_file, timeout=timeout, check=check)

    def docker(self, *args: str) -> str:
        return _stack("docker", *args, env_file=self.env_file).stdout.strip()

    def api(self, method: str, path: str, auth, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api{path}", auth=auth, timeout=60, **kwargs)

    def ok(self, method: str, path: str, auth, **kwargs):
        r = self.api(method, path, auth, **kwargs)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def wait_generation(self, job_id: int, timeout: float = 300) -> dict:
        job = _wait_until(
            lambda: (
                (j := self.ok("GET", f"/generate/{job_id}", self.engineer))["status"]
                in ("succeeded", "failed", "cancelled")
                and j
            ),
            timeout,
            f"generation job {job_id} did not end",
        )
        assert job["status"] == "succeeded", job
        return job

    def run(self, run_id: int) -> dict:
        return self.ok("GET", f"/runs/{run_id}", self.engineer)

    def wait_run(self, run_id: int, timeout: float = 600) -> dict:
        return _wait_until(
            lambda: (r := self.run(run_id))["status"] in ("succeeded", "failed", "cancelled") and r,
            timeout,
            f"run {run_id} did not end",
        )

    def vote_all(self) -> int:
        n = 0
        while True:
            r = self.api("GET", "/comparisons/next", self.rater)
            if r.status_code == 204 or not r.content or r.json() is None:
                return n
            assert r.status_code == 200, r.text
            pair = r.json()
            choice = "a" if len(pair["a"]) <= len(pair["b"]) else "b"  # the shorter one
            self.ok("POST", "/votes", self.rater, json={"comparison_id": pair["comparison_id"], "choice": choice})
            n += 1

    def health(self) -> dict | None:
        try:
            r = httpx.get(f"{self.url}/api/health", timeout=10)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pytestconfig):
    env_file = _write_env(tmp_path_factory.mktemp("stack") / "stack.env")
    # From nothing but the images: a stack left by an earlier run (its volumes hold other
    # passwords) goes first.
    _stack("down", env_file=env_file, timeout=600)
    t0 = time.monotonic()
    try:
        up = _stack("up", env_file=env_file, timeout=2400)
        up_s = time.monotonic() - t0
        for line in up.stderr.splitlines():
            if re.search(r"built |images: |healthy in", line):
                _report(pytestconfig, line.removeprefix("stack: "))
        _report(pytestconfig, f"first up: {up_s:.0f} s")
        url = up.stdout.strip().splitlines()[-1]
        s = Stack(env_file, url)
        s.state["first_up"] = up
        yield s
    finally:
        down = _stack("down", env_file=env_file, timeout=600, check=False)
        if down.returncode != 0:
            print(down.stderr[-3000:])


def test_up_builds_the_images_and_the_stack_is_healthy(stack, pytestconfig):
    assert stack.url == f"http://127.0.0.1:{PORT}", "the last line of `up` is the web URL"
    health = httpx.get(f"{stack.url}/api/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    rows = [
        json.loads(line) for line in stack.compose("ps", "-a", "--format", "json").stdout.splitlines() if line.strip()
    ]
    if len(rows) == 1 and isinstance(rows[0], list):
        rows = rows[0]
    state = {r["Service"]: r for r in rows}
    assert set(state) == {"postgres", "redis", "migrate", "web", "proxy", "inference", "worker"}, state.keys()
    for name in ("postgres", "redis", "web", "proxy", "inference"):
        assert state[name]["State"] == "running" and state[name]["Health"] == "healthy", state[name]
    assert state["worker"]["State"] == "running"
    assert state["migrate"]["State"] == "exited" and state["migrate"]["ExitCode"] == 0

    # A second `up` reuses what the first built: nothing made from scratch, every layer cached.
    t0 = time.monotonic()
    again = _stack("up", env_file=stack.env_file, timeout=900)
    cached_s = time.monotonic() - t0
    _report(pytestconfig, f"second up (cached): {cached_s:.0f} s")
    assert again.stdout.strip().splitlines()[-1].rstrip("/") == stack.url
    assert "debootstrap" not in again.stderr and "building postgres" not in again.stderr
    log = (STACK_ROOT / "logs" / "build-app.log").read_text()
    assert "Running in" not in log.split("FROM deps AS builder")[0], "the dependency layers were rebuilt"
    for line in again.stderr.splitlines():
        if "images: " in line:
            _report(pytestconfig, line.removeprefix("stack: "))

    # The GPU worker's profile is valid compose (it cannot be built without a CUDA base image).
    config = stack.compose("--profile", "gpu", "config", "--services").stdout.split()
    assert "worker-gpu" in config


def _set_web_replicas(stack, n: int) -> None:
    stack.compose("up", "-d", "--no-build", "--wait", "--scale", f"web={n}", timeout=600)
    stack.compose("restart", "proxy", timeout=120)  # nginx looks the replicas up when it starts
    _wait_until(stack.health, 120, "the proxy did not answer after its restart", interval=1)


def test_two_web_replicas_serve_behind_the_proxy(stack):
    _set_web_replicas(stack, 2)
    try:
        for _ in range(20):  # no cookie and no credentials: nginx takes turns
            assert httpx.get(f"{stack.url}/api/health", timeout=10).status_code == 200
        log = stack.compose("logs", "--no-log-prefix", "proxy").stdout
        upstreams = set(re.findall(r'"GET /api/health HTTP/1\.1" 200 \d+ upstream=([0-9.]+:\d+) 200 ', log))
        assert len(upstreams) == 2, f"the proxy sent to {upstreams}, not to both replicas"
    finally:
        _set_web_replicas(stack, 1)


PROBE = """
import pathlib, sys
import redis, sqlalchemy as sa
from rlhf.settings import get_settings
s = get_settings()
with sa.create_engine(s.database_url).connect() as c:
    c.execute(sa.text("select 1")).scalar()
assert redis.Redis.from_url(s.broker_url).ping()
d = pathlib.Path(s.data_dir)
(d / f"probe-{sys.argv[1]}").write_text(sys.argv[1])
print(sorted(p.name for p in d.glob("probe-*")))
"""


def test_every_app_service_sees_the_database_the_broker_and_the_data_volume(stack):
    for service in ("web", "worker"):
        out = stack.compose("exec", "-T", service, "python", "-c", PROBE, service, timeout=120).stdout
        assert f"probe-{service}" in out
    # migrate has exited: a one-off container of it, with its environment and mounts.
    out = stack.compose(
        "run", "--rm", "--no-deps", "-T", "migrate", "python", "-c", PROBE, "migrate", timeout=120
    ).stdout
    assert "['probe-migrate', 'probe-web', 'probe-worker']" in out, "the three do not share one data volume"


def test_a_whole_round_runs_in_the_containers(stack):
    stack.ok(
        "POST",
        "/users",
        stack.admin,
        json={"name": stack.engineer[0], "role": "engineer", "password": stack.engineer[1]},
    )
    stack.ok("POST", "/users", stack.admin, json={"name": stack.rater[0], "role": "rater", "password": stack.rater[1]})
    prompts = [{"prompt": f"Say something kind about topic {i}."} for i in range(8)]
    assert stack.ok("POST", "/prompts", stack.engineer, json=prompts)["created"] == 8
    base = [c for c in stack.ok("GET", "/checkpoints", stack.engineer) if c["status"] == "serving"]
    assert len(base) == 1, base

    job = stack.ok("POST", "/generate", stack.engineer, json={"limit": 8, "max_new_tokens": 16})
    job = stack.wait_generation(job["id"])
    assert job["result"]["comparisons"] == 8 and job["result"]["checkpoints"] == [base[0]["id"]]
    assert f"generation job {job['id']}: succeeded" in stack.compose("logs", "worker").stdout, (
        "the generation did not run on the worker container"
    )
    assert stack.vote_all() == 8

    run = stack.ok(
        "POST",
        "/runs",
        stack.engineer,
        json={"algorithm": "dpo", "serve": True, "params": {"steps": 10, "eval_samples": 0}},
    )
    run = stack.wait_run(run["id"])
    assert run["status"] == "succeeded", run["error"]
    assert run["votes"] == 8
    new = next(c for c in stack.ok("GET", "/checkpoints", stack.engineer) if c["id"] == run["output_checkpoint_id"])
    assert new["status"] == "serving" and new["run_id"] == run["id"]
    # The worker wrote it; the web container sees the same files.
    stack.compose("exec", "-T", "web", "test", "-f", f"{new['path']}/config.json", timeout=60)

    # Next round: the new checkpoint's samples come back to the raters, against the base model.
    job2 = stack.wait_generation(
        stack.ok("POST", "/generate", stack.engineer, json={"limit": 8, "max_new_tokens": 16})["id"]
    )
    assert new["id"] in job2["result"]["checkpoints"] and job2["result"]["comparisons"] > 0
    assert stack.vote_all() == job2["result"]["comparisons"]
    standings = {s["checkpoint_id"]: s for s in stack.ok("GET", "/leaderboard", stack.engineer)["standings"]}
    assert standings[new["id"]]["votes"] > 0 and standings[base[0]["id"]]["votes"] > 0
    stack.state["round"] = {"run": run["id"], "checkpoint": new}

    # The arena: the web container asks the inference service, which loads the serving
    # checkpoints from the shared volume; the rater's vote counts like any other.
    battle = stack.ok("POST", "/arena", stack.rater, json={"messages": [{"role": "user", "content": "Name a colour."}]})
    assert isinstance(battle["a"], str) and isinstance(battle["b"], str)  # a sampled answer may be empty
    stack.ok("POST", "/votes", stack.rater, json={"comparison_id": battle["comparison_id"], "choice": "a"})
    names = stack.ok("GET", f"/arena/{battle['comparison_id']}", stack.rater)
    assert {names["a"], names["b"]} <= {new["name"], base[0]["name"]}, names
    assert "/v1/chat/completions" in stack.compose("logs", "inference").stdout, "the answers did not come from it"


def test_worker_killed_mid_run_is_reaped_and_the_restarted_worker_takes_the_next_run(stack, pytestconfig):
    assert "round" in stack.state, "needs the round above"
    worker = stack.container("worker")
    restarts = int(stack.docker("inspect", "-f", "{{.RestartCount}}", worker))
    run_id = stack.ok(
        "POST", "/runs", stack.engineer, json={"algorithm": "dpo", "params": {"steps": 100000, "eval_samples": 0}}
    )["id"]
    _wait_until(
        lambda: stack.run(run_id)["status"] == "running" and stack.run(run_id)["progress"].get("step"),
        300,
        "the long run never started training",
    )
    # SIGKILL to the container's PID 1 from the host, as the kernel's OOM killer would: the
    # worker and its trainer die at once, and Docker, which did not stop it, restarts it
    # (`docker kill` would count as stopped by hand: `unless-stopped` would leave it down).
    pid = int(stack.docker("inspect", "-f", "{{.State.Pid}}", worker))
    os.kill(pid, 9)
    killed = time.monotonic()

    run = _wait_until(
        lambda: (r := stack.run(run_id))["status"] != "running" and r,
        HEARTBEAT_TIMEOUT_S + 240,
        "the run stayed 'running' after its worker was killed",
    )
    _report(
        pytestconfig,
        f"killed run failed {time.monotonic() - killed:.0f} s after the kill "
        f"(heartbeat timeout {HEARTBEAT_TIMEOUT_S} s)",
    )
    assert run["status"] == "failed" and "stopped reporting" in (run["error"] or ""), run
    assert run["output_checkpoint_id"] is None
    assert int(stack.docker("inspect", "-f", "{{.RestartCount}}", worker)) > restarts, "the worker was not restarted"

    nxt = stack.wait_run(
        stack.ok("POST", "/runs", stack.engineer, json={"algorithm": "dpo", "params": {"steps": 2, "eval_samples": 0}})[
            "id"
        ]
    )
    assert nxt["status"] == "succeeded", nxt["error"]
    assert stack.run(run_id)["status"] == "failed"
    stack.state["killed_run"] = run_id


def test_restart_of_everything_keeps_every_vote_run_and_checkpoint(stack):
    assert "round" in stack.state, "needs the round above"
    before_stats = stack.ok("GET", "/stats", stack.engineer)
    before_runs = {r["id"]: r["status"] for r in stack.ok("GET", "/runs", stack.engineer)}
    before_checkpoints = {c["id"]: (c["status"], c["path"]) for c in stack.ok("GET", "/checkpoints", stack.engineer)}

    stack.compose("restart", timeout=600)
    _wait_until(
        lambda: (h := stack.health()) and h["database"] == "ok" and h["broker"] == "ok",
        300,
        "the web app did not come back after the restart",
        interval=2,
    )

    after_stats = stack.ok("GET", "/stats", stack.engineer)
    for key in ("votes", "comparisons", "prompts", "responses"):
        if key in before_stats:
            assert after_stats[key] == before_stats[key], key
    assert {r["id"]: r["status"] for r in stack.ok("GET", "/runs", stack.engineer)} == before_runs
    assert {
        c["id"]: (c["status"], c["path"]) for c in stack.ok("GET", "/checkpoints", stack.engineer)
    } == before_checkpoints
    new = stack.state["round"]["checkpoint"]
    stack.compose("exec", "-T", "worker", "test", "-f", f"{new['path']}/config.json", timeout=60)
    # The queue works again: a job after the restart is taken and done.
    stack.wait_generation(stack.ok("POST", "/generate", stack.engineer, json={"limit": 1, "max_new_tokens": 8})["id"])


def test_a_failing_build_names_its_step(stack, tmp_path):
    env_file = _write_env(tmp_path / "broken.env", RLHF_IMAGE="rlhf-loop:broken-torch-index", WEB_PORT=str(PORT + 1))
    proc = _stack(
        "up",
        env_file=env_file,
        timeout=600,
        check=False,
        env={"RLHF_STACK_TORCH_WHEELS": "none", "TORCH_INDEX_URL": "http://127.0.0.1:9/simple"},
    )
    assert proc.returncode != 0
    assert re.search(r"building app failed at Step \d+/\d+ : RUN .*torch==2\.13\.0", proc.stderr), proc.stderr[-3000:]
    assert httpx.get(f"{stack.url}/api/health", timeout=10).status_code == 200, "the running stack was touched"


def test_bad_input_is_named(stack, tmp_path):
    missing = _write_env(tmp_path / "missing.env", POSTGRES_PASSWORD="")
    proc = _stack("up", env_file=missing, timeout=60, check=False)
    assert proc.returncode != 0 and "POSTGRES_PASSWORD is not set" in proc.stderr, proc.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _stack("up", env_file=_write_env(tmp_path / "busy.env", WEB_PORT=str(port)), timeout=120, check=False)
    assert proc.returncode != 0 and f"port {port} (WEB_PORT" in proc.stderr, proc.stderr


def test_down_leaves_nothing_running(stack):
    marker = STACK_ROOT / "engine.started-by-stack"
    engine_pid = int(marker.read_text()) if marker.exists() else None
    proc = _stack("down", env_file=stack.env_file, timeout=600)
    assert "left over" not in proc.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.url}/api/health", timeout=5)
    if engine_pid is not None:
        assert not Path(f"/proc/{engine_pid}").exists(), "the engine `up` started is still running"
        shims = subprocess.run(
            ["pgrep", "-f", f"containerd-shim.*{STACK_ROOT}"], capture_output=True, text=True
        ).stdout.split()
        assert not shims, f"container processes left: {shims}"
