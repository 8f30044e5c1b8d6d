"""docker-compose.yml and the images it builds, checked without a container engine.

What can go wrong between the compose file and the code is checked against the code
itself: commands against the CLI's command tree, environment variables against the
settings object, the torch pin against pyproject.toml.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from rlhf.settings import EXAMPLE_SECRET_KEYS, Settings
from rlhf_cli.main import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "web", "worker", "worker-gpu")
REQUIRED_SECRETS = ("RLHF_SECRET_KEY", "POSTGRES_PASSWORD", "RLHF_ADMIN_PASSWORD")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _torch_pin() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if re.match(r"torch\b", d)).replace(" ", "")


def _resolve(argv: list[str]):
    """Walk the CLI's command tree along argv; fails on a command or option it does not have.

    Groups are told apart by their ``commands`` (Typer ships its own click classes).
    """
    command = get_command(cli_app)
    args = list(argv)
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"`rlhf {' '.join(argv)}`: no command {name!r}"
        command = command.commands[name]
    assert not hasattr(command, "commands"), f"`rlhf {' '.join(argv)}` names a group, not a command"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=")[0] in known, f"`rlhf {' '.join(argv)}`: {arg} is not an option of {command.name}"
    return command


def _dockerfile_stages(path: Path) -> list[list[str]]:
    """Instructions (continuation lines joined) grouped by FROM stage."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_commands_are_real_cli_commands(name):
    command = SERVICES[name]["command"]
    assert command[0] == "rlhf"
    _resolve(command[1:])


def test_expected_commands():
    assert SERVICES["migrate"]["command"] == ["rlhf", "init"]
    web = SERVICES["web"]["command"]
    assert web[:2] == ["rlhf", "serve"] and web[web.index("--host") + 1] == "0.0.0.0"
    for worker in ("worker", "worker-gpu"):
        cmd = SERVICES[worker]["command"]
        assert cmd[:2] == ["rlhf", "worker"]
        assert "train,generate" in cmd[cmd.index("--queues") + 1]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_rlhf_variables_are_settings_fields(name):
    fields = {f.upper() for f in Settings.model_fields}
    env = SERVICES[name]["environment"]
    unknown = [k for k in env if k.startswith("RLHF_") and k.removeprefix("RLHF_") not in fields]
    assert not unknown, f"{name} sets variables no setting reads: {unknown}"


def test_web_and_workers_share_the_data_volume_at_the_data_dir():
    mounts = set()
    for name in APP_SERVICES:
        svc = SERVICES[name]
        data_dir = svc["environment"]["RLHF_DATA_DIR"]
        volume = next(v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == data_dir)
        mounts.add((volume, data_dir))
    assert len(mounts) == 1, f"web and workers must see the same checkpoints: {mounts}"
    assert next(iter(mounts))[0] in COMPOSE["volumes"]


def test_named_volumes_declared_and_used():
    declared = set(COMPOSE["volumes"])
    used = set()
    for name, svc in SERVICES.items():
        for v in svc.get("volumes", []):
            source = v.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert declared == used, f"declared but unused: {declared - used}"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["postgres"]["volumes"])
    assert any(v.endswith(":/data") for v in SERVICES["redis"]["volumes"])


def test_health_checks():
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(SERVICES["redis"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(SERVICES["proxy"]["healthcheck"]["test"])


def test_the_arena_asks_the_inference_service_and_jobs_sample_in_the_worker():
    inference = SERVICES["inference"]
    assert "profiles" not in inference, "the engine runs by default: the web container loads no model"
    assert "serve" in inference["command"] and "8000" in inference["command"]
    assert "/health" in " ".join(inference["healthcheck"]["test"])
    assert any(v.endswith(":/data") for v in inference["volumes"]), "it loads checkpoints from the shared volume"
    assert SERVICES["web"]["environment"]["RLHF_INFERENCE_URL"] == "${RLHF_INFERENCE_URL:-http://inference:8000}"
    # One setting moves both to a GPU engine; unset, generation jobs stay batched in the worker.
    assert SERVICES["worker"]["environment"]["RLHF_INFERENCE_URL"] == "${RLHF_INFERENCE_URL:-}"


def test_start_order():
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("web", "worker", "worker-gpu"):
        deps = SERVICES[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"


def test_secrets_are_required_not_defaulted():
    for var in REQUIRED_SECRETS:
        assert "${" + var + ":?" in COMPOSE_TEXT, f"{var} must be required with ${{{var}:?message}}"
        assert not re.search(r"\$\{" + var + r":?-", COMPOSE_TEXT), f"{var} must have no default"
    assert SERVICES["web"]["environment"]["RLHF_SECRET_KEY"].startswith("${RLHF_SECRET_KEY:?")
    assert SERVICES["migrate"]["environment"]["RLHF_ADMIN_PASSWORD"].startswith("${RLHF_ADMIN_PASSWORD:?")
    assert "${POSTGRES_PASSWORD:?" in SERVICES["web"]["environment"]["RLHF_DATABASE_URL"]


def test_env_example_documents_every_variable_with_refused_placeholders():
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    referenced = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_TEXT))
    assert referenced <= set(example), f"missing from .env.example: {referenced - set(example)}"
    assert example["RLHF_SECRET_KEY"].strip().lower() in EXAMPLE_SECRET_KEYS
    assert example["POSTGRES_PASSWORD"] == "" and example["RLHF_ADMIN_PASSWORD"] == ""


def test_redis_keeps_queued_jobs_across_restarts():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command


def test_images_are_pinned():
    for name in ("postgres", "redis", "flower"):
        image = SERVICES[name]["image"]
        assert re.search(r":\d+\.\d+", image), f"{name}: pin a version, not {image}"
    # A registry mirror is named in the env file; the defaults are the official images.
    assert SERVICES["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:16.6-bookworm}"
    assert SERVICES["redis"]["image"] == "${REDIS_IMAGE:-redis:7.4.2-bookworm}"
    assert SERVICES["web"]["image"] == "${RLHF_IMAGE:-rlhf-loop:local}"
    for path in ("deploy/Dockerfile", "deploy/Dockerfile.cuda"):
        bases = re.findall(r"^ARG \w+_IMAGE=(\S+)", (ROOT / path).read_text(), re.M)
        assert bases and all(re.search(r":\d+\.\d+\.\d+", b) for b in bases), f"{path}: unpinned base {bases}"
    assert re.search(r"python:3\.11\.\d+-slim-bookworm", (ROOT / "deploy/Dockerfile").read_text())
    assert re.search(r"nvidia/cuda:[\d.]+-[\w-]*runtime-ubuntu", (ROOT / "deploy/Dockerfile.cuda").read_text())


def test_dockerfiles_named_by_compose_exist():
    for name, svc in SERVICES.items():
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file(), name


def _arg_default(path: str, name: str) -> str | None:
    m = re.search(rf"^ARG {name}=(\S*)", (ROOT / path).read_text(), re.M)
    return m.group(1).strip('"') if m else None


def test_cpu_image_installs_cpu_torch_before_the_project():
    pin = _torch_pin()
    assert f'"{pin}"' in (ROOT / "scripts/setup").read_text(), "scripts/setup and pyproject disagree on torch"
    assert _arg_default("deploy/Dockerfile", "TORCH_INDEX_URL") == CPU_INDEX
    deps, builder, runtime = _dockerfile_stages(ROOT / "deploy/Dockerfile")
    torch_at = next(i for i, line in enumerate(deps) if pin in line and "pip install" in line)
    assert "--index-url $TORCH_INDEX_URL" in deps[torch_at] and "--find-links $TORCH_FIND_LINKS" in deps[torch_at]
    pins_at = next(i for i, line in enumerate(deps) if "pyproject.toml" in line and "pip install" in line)
    assert torch_at < pins_at, "torch must be in place before the dependencies that would pull a CUDA build"
    assert not any(line.startswith("COPY . ") for line in deps), "no project code in the dependency layers"
    assert not any("requirements" in line for line in deps + builder), "dependencies come from pyproject.toml"
    assert builder[0].split()[1] == "deps" and any(line.startswith("COPY . ") for line in builder)
    assert any(re.search(r"pip install .*--no-deps .*\s\.(\s|$)", line) for line in builder)
    assert runtime[0].split()[1] == "deps" and "COPY --from=builder /opt/app /opt/app" in runtime


def test_cuda_image_installs_cuda_torch_and_deepspeed():
    pin = _torch_pin()
    assert "/cu" in _arg_default("deploy/Dockerfile.cuda", "TORCH_INDEX_URL")
    builder = _dockerfile_stages(ROOT / "deploy/Dockerfile.cuda")[0]
    torch_line = next(line for line in builder if pin in line and "pip install" in line)
    assert CPU_INDEX not in torch_line
    assert any(re.search(r"pip install .*--no-deps \.(\s|$)", line) for line in builder)
    assert any(re.search(r'"deepspeed==[\d.]+"', line) for line in builder), "zero3.yaml needs a pinned DeepSpeed"


BUILD_ARGS = ("PIP_INDEX", "PIP_EXTRA_INDEX", "TORCH_INDEX_URL", "TORCH_FIND_LINKS", "EXTRA_CA_CERTS", "EXTRA_CA_URL")


@pytest.mark.parametrize("path", ["deploy/Dockerfile", "deploy/Dockerfile.cuda"])
def test_dockerfiles_build_behind_a_mirror_and_a_proxy(path):
    text = (ROOT / path).read_text()
    assert not re.search(r"^#\s*syntax=", text, re.M), "a syntax line makes BuildKit pull a frontend image"
    missing = [a for a in BUILD_ARGS if not re.search(rf"^ARG {a}=", text, re.M)]
    assert not missing, f"{path}: no build argument {missing}"
    # Every step that downloads trusts the extra CAs first.
    for stage in _dockerfile_stages(ROOT / path):
        for line in stage:
            if line.startswith("RUN") and "pip install" in line:
                assert line.index("trust-extra-ca") < line.index("pip install"), line


def test_one_dockerignore_for_both_builders_keeps_the_context_small():
    """The legacy builder reads only the root .dockerignore; BuildKit would prefer a
    <Dockerfile>.dockerignore next to the Dockerfile, so there must be none to drift."""
    assert not list((ROOT / "deploy").glob("*.dockerignore"))
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests", "bench"} <= ignored
    # Whatever pyproject.toml packages reaches the image, including top-level packages added later.
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [
        p for p in ROOT.iterdir() if p.is_dir() and any(re.fullmatch(i.replace("*", ".*"), p.name) for i in include)
    ]
    assert packages and not [p.name for p in packages if p.name in ignored]
    assert "pyproject.toml" not in ignored and "README.md" not in ignored and "deploy" not in ignored


@pytest.mark.parametrize("path", ["deploy/Dockerfile", "deploy/Dockerfile.cuda"])
def test_images_run_as_non_root(path):
    final = _dockerfile_stages(ROOT / path)[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), f"{path}: the final stage must switch to a plain user"
    assert any("/app/deploy/entrypoint.sh" in line for line in final if line.startswith("ENTRYPOINT"))


def test_entrypoint_execs_the_command():
    script = ROOT / "deploy/entrypoint.sh"
    assert os.access(script, os.X_OK)
    assert 'exec "$@"' in script.read_text()


def test_gpu_worker_reserves_nvidia_devices():
    gpu = SERVICES["worker-gpu"]
    assert "gpu" in gpu["profiles"]
    assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.cuda"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "profiles" not in SERVICES["worker"], "the CPU worker runs by default"


def test_flower_watches_the_same_broker():
    flower = SERVICES["flower"]
    assert "monitoring" in flower["profiles"]
    assert "flower" in flower["command"]
    broker = SERVICES["web"]["environment"]["RLHF_BROKER_URL"]
    assert f"--broker={broker}" in flower["command"]


@pytest.mark.parametrize("name,kind", [("ddp", "MULTI_GPU"), ("zero3", "DEEPSPEED")])
def test_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(ROOT / "deploy/accelerate" / f"{name}.yaml"))
    assert config.distributed_type.name == kind
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 3


def test_accelerate_config_is_passed_to_accelerate_launch(tmp_path):
    from rlhf.jobs.training import trainer_command
    from rlhf.training.spec import TrainerSpec

    config = "/app/deploy/accelerate/zero3.yaml"
    spec = TrainerSpec(
        run_id=1,
        algorithm="dpo",
        base="b",
        reward_model=None,
        data="d",
        output_dir="o",
        work_dir="w",
        progress="p",
        result="r",
        stop="s",
        params={"num_processes": 4, "accelerate_config": config},
    )
    cmd = trainer_command(tmp_path / "spec.json", spec)
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[cmd.index("--config_file") + 1] == config


NGINX = os.environ.get("RLHF_TEST_NGINX", "/usr/sbin/nginx")
NGINX_DIR = ROOT / "deploy/nginx"


def test_the_proxy_publishes_the_web_port_and_web_scales():
    proxy, web = SERVICES["proxy"], SERVICES["web"]
    # Operators keep the URL they had: the published port is the same, now the proxy's.
    assert proxy["ports"] == ["${WEB_PORT:-7860}:80"]
    # Replicas of web cannot share a published host port or a container name.
    assert "ports" not in web and "container_name" not in web
    assert web["command"][web["command"].index("--port") + 1] == "7860"
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert proxy["build"]["dockerfile"] == "deploy/nginx/Dockerfile"
    assert proxy["image"] == "${RLHF_PROXY_IMAGE:-rlhf-loop-proxy:local}"
    # Behind the proxy the web app believes its X-Forwarded-For: the proxy overwrites it.
    assert web["environment"]["RLHF_FORWARDED_ALLOW_IPS"] == "${RLHF_FORWARDED_ALLOW_IPS:-*}"


def test_the_proxy_image_is_debians_nginx_with_the_projects_config():
    stages = _dockerfile_stages(NGINX_DIR / "Dockerfile")
    assert len(stages) == 1
    assert _arg_default("deploy/nginx/Dockerfile", "BASE_IMAGE") == "debian:bookworm-slim"
    text = " ".join(stages[0])
    assert "apt-get install" in text and " nginx " in text
    assert "COPY deploy/nginx/compose.conf /etc/nginx/conf.d/rlhf.conf" in text
    assert "COPY deploy/nginx/rlhf-proxy.conf /etc/nginx/snippets/rlhf-proxy.conf" in text


@pytest.mark.parametrize(("name", "consistent"), [("rlhf.conf", True), ("compose.conf", False)])
def test_the_proxy_keeps_each_browser_on_one_process(name, consistent):
    from feedback_ui.auth import SESSION_COOKIE

    conf = (NGINX_DIR / name).read_text()
    upstream = re.search(r"upstream rlhf_web \{(.*?)\}", conf, re.S).group(1)
    hashed = re.search(rf"^\s*hash \$cookie_{SESSION_COOKIE}\S*( consistent)?;", upstream, re.M)
    assert hashed, upstream
    # nginx builds the consistent ring from the server line's name: one line per process on a
    # host, but one name (web:7860) for every compose replica, where it would not stick.
    assert bool(hashed.group(1)) is consistent
    assert "include /etc/nginx/snippets/rlhf-proxy.conf;" in conf


def test_the_proxy_streams_and_moves_on_from_a_dead_process():
    from feedback_ui.api_data import UPLOAD_LIMIT

    snippet = (NGINX_DIR / "rlhf-proxy.conf").read_text()
    directives = {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\s*(proxy_\w+|client_max_body_size)\s+([^;]*);", snippet, re.M)
        if m.group(1) != "proxy_set_header"
    }
    headers = dict(re.findall(r"^\s*proxy_set_header\s+(\S+)\s+([^;]*);", snippet, re.M))
    assert directives["client_max_body_size"] == f"{UPLOAD_LIMIT // 2**20}m"
    assert directives["proxy_http_version"] == "1.1"
    assert directives["proxy_buffering"] == "off"  # Gradio's event stream and the arena's answers
    assert directives["proxy_next_upstream"] == "error timeout http_502 http_503"
    assert headers["X-Forwarded-For"] == "$remote_addr"  # overwritten, never passed on


@pytest.mark.parametrize("name", ["rlhf.conf", "compose.conf"])
def test_nginx_accepts_the_config(name, tmp_path):
    """`nginx -t` on the file as shipped, its host names, paths and port swapped for this machine's."""
    if not Path(NGINX).exists():
        pytest.fail(f"this test needs nginx at {NGINX} (scripts/services installs it; or set RLHF_TEST_NGINX)")
    site = (NGINX_DIR / name).read_text()
    site = site.replace("server web:7860", "server 127.0.0.1:7860")  # compose's service name
    site = site.replace("/etc/nginx/snippets/rlhf-proxy.conf", str(NGINX_DIR / "rlhf-proxy.conf"))
    site = re.sub(r"access_log \S+", f"access_log {tmp_path / 'access.log'}", site)
    site = site.replace("listen 80;", "listen 127.0.0.1:1;")
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};\n"
        f"events {{}}\nhttp {{ {temp} include {tmp_path / 'site.conf'}; }}\n"
    )
    proc = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
