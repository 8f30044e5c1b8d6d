"""Other sites: no CORS door unless configured, no framing, forwarded headers believed only from
configured proxies, and guessing slowed per name whatever address the guesses claim.

The browser's side of CORS and framing is in ``test_cross_origin_browser.py``.
"""

from __future__ import annotations

import socket
import threading
import time

import gradio
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from feedback_ui import web_security
from feedback_ui.app import create_app
from rlhf import db
from rlhf.inference import Inference
from rlhf.models import LoginFailure
from rlhf.settings import Settings, get_settings, reset_settings_cache
from rlhf_cli.web import uvicorn_config
from tests.api.conftest import PASSWORD, basic

sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-requested-with"}


def _preflight(client, path: str, origin: str, host: str | None = None):
    headers = {**PREFLIGHT, "Origin": origin, **({"Host": host} if host else {})}
    return client.options(path, headers=headers)


@sqlite_only
@pytest.mark.parametrize("host", ["127.0.0.1:7860", "localhost:7860", "rlhf.example"])
@pytest.mark.parametrize("path", ["/api/votes", "/gradio_api/queue/join", "/login"])
def test_no_origin_is_granted_cors_by_default(client, world, host, path):
    """Gradio's own middleware answered these with the origin and credentials; now nobody is granted."""
    for origin in ("http://127.0.0.1:8123", "http://localhost:3000", "https://evil.example", "null"):
        answer = _preflight(client, path, origin, host)
        assert answer.status_code == 400, (origin, answer.headers)
        # Without Allow-Origin a browser refuses the request (Starlette's refusal still lists its other headers).
        assert "access-control-allow-origin" not in answer.headers
        simple = client.get("/api/health", headers={"Origin": origin, "Host": host})
        assert "access-control-allow-origin" not in simple.headers


@sqlite_only
def test_configured_origins_alone_are_granted_with_credentials(settings, world, test_engine_url, monkeypatch):
    monkeypatch.setenv("RLHF_CORS_ORIGINS", "http://127.0.0.1:8123, https://raters.example")
    reset_settings_cache()
    app = create_app(get_settings(), start_worker=False, inference=Inference(url=test_engine_url))
    with TestClient(app) as client:
        for origin in ("http://127.0.0.1:8123", "https://raters.example"):
            answer = _preflight(client, "/api/votes", origin)
            assert answer.status_code == 200
            assert answer.headers["access-control-allow-origin"] == origin
            assert answer.headers["access-control-allow-credentials"] == "true"
            me = client.get("/api/me", headers={"Origin": origin, **basic("rater")})
            assert me.headers["access-control-allow-origin"] == origin
        for origin in ("http://127.0.0.1:8124", "https://evil.example", "https://raters.example.evil.example"):
            refused = _preflight(client, "/api/votes", origin)
            assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_the_origins_setting_refuses_a_wildcard_and_paths():
    assert Settings(cors_origins="https://A.example:8443/").cors_origins == ["https://a.example:8443"]
    for bad in ("*", "https://a.example/path", "a.example", "ftp://a.example"):
        with pytest.raises(ValueError, match="RLHF_CORS_ORIGINS"):
            Settings(cors_origins=bad)
    assert Settings(cors_origins="https://a.example, http://[::1]:8080").cors_origins == [
        "https://a.example",
        "http://[::1]:8080",
    ]


def test_gradio_stands_aside_when_the_parent_app_configures_cors():
    """The seam this relies on (gradio/route_utils.py): pinned to the tested Gradio version."""
    from gradio.route_utils import CustomCORSMiddleware

    assert gradio.__version__ == "6.31.0"
    assert hasattr(CustomCORSMiddleware, "parent_configures_cors")


@sqlite_only
def test_every_answer_says_it_may_be_framed_only_by_this_site(client, world):
    client.post("/login", data={"username": "rater", "password": PASSWORD})
    for path in ("/", "/login", "/api/health", "/api/me", "/api/nothing-here", "/gradio_api/info"):
        answer = client.get(path)
        headers = answer.headers
        assert "frame-ancestors 'self'" in headers["content-security-policy"], path
        assert "object-src 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "SAMEORIGIN"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert client.get("/api/docs").headers["content-security-policy"] == web_security.DOCS_CSP
    refused = client.post("/gradio_api/queue/join", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.headers["x-frame-options"] == "SAMEORIGIN"


@sqlite_only
def test_the_locked_login_page_says_when_to_come_back(client, app, world):
    ctx = app.state.web
    start = ctx.clock()
    ctx.clock = lambda: start
    for _ in range(5):
        client.post("/login", data={"username": "rater", "password": "guess"})
    page = client.post("/login", data={"username": "rater", "password": PASSWORD})
    assert page.status_code == 429 and page.headers["retry-after"] == "2"


@sqlite_only
def test_path_ids_carry_the_databases_bound_in_the_schema(client, world):
    doc = client.get("/api/openapi.json").json()
    ids = [
        (path, p["schema"])
        for path, ops in doc["paths"].items()
        for op in ops.values()
        for p in op.get("parameters", [])
        if p["in"] == "path"
    ]
    assert len(ids) >= 10
    for path, schema in ids:
        if schema.get("type") == "string":  # a name or an id, as a judge is named: bounded in length
            assert schema["maxLength"] <= 128, path
            continue
        assert schema["maximum"] == 2**63 - 1 and schema["minimum"] == -(2**63), path
    too_big = client.get(f"/api/runs/{2**63}", headers=basic("engineer"))
    assert too_big.status_code == 422 and "less than or equal" in too_big.text


# --- a real uvicorn, as `rlhf serve` configures it ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Served:
    def __init__(self, app, settings):
        self.port = _free_port()
        self.server = __import__("uvicorn").Server(uvicorn_config(app, settings, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _addresses(url: str) -> list[str]:
    with Session(db.get_engine(url)) as s:
        return list(s.exec(select(LoginFailure.address).order_by(LoginFailure.id)).all())


@sqlite_only
@pytest.mark.parametrize("trusted, expected", [("127.0.0.1", "203.0.113.9"), ("10.9.9.9", "127.0.0.1")])
def test_forwarded_addresses_are_believed_only_from_configured_proxies(
    settings, world, test_engine_url, monkeypatch, trusted, expected
):
    monkeypatch.setenv("RLHF_FORWARDED_ALLOW_IPS", trusted)
    reset_settings_cache()
    conf = get_settings()
    app = create_app(conf, start_worker=False, inference=Inference(url=test_engine_url))
    with _Served(app, conf) as base:
        answer = httpx.post(f"{base}/api/token", headers={"X-Forwarded-For": "203.0.113.9", **basic("rater", "x")})
        assert answer.status_code == 401
    assert _addresses(conf.database_url) == [expected]


@sqlite_only
def test_guesses_from_changing_addresses_are_slowed_all_the_same(settings, world, test_engine_url, monkeypatch):
    """Behind a trusted proxy that passes the client's X-Forwarded-For on, each guess can claim a new address."""
    monkeypatch.setenv("RLHF_FORWARDED_ALLOW_IPS", "*")
    reset_settings_cache()
    conf = get_settings()
    app = create_app(conf, start_worker=False, inference=Inference(url=test_engine_url))
    start = app.state.web.clock()
    app.state.web.clock = lambda: start
    with _Served(app, conf) as base:
        codes = [
            httpx.post(
                f"{base}/api/token", headers={"X-Forwarded-For": f"198.51.100.{i}", **basic("admin", f"guess-{i}")}
            ).status_code
            for i in range(10)
        ]
        right = httpx.post(f"{base}/api/token", headers={"X-Forwarded-For": "192.0.2.77", **basic("admin")})
        page = httpx.post(
            f"{base}/login", data={"username": "admin", "password": PASSWORD}, headers={"X-Forwarded-For": "192.0.2.78"}
        )
    assert codes == [401] * 5 + [429] * 5
    assert right.status_code == 429 and page.status_code == 429
    assert len(set(_addresses(conf.database_url))) == 5  # the five addresses it claimed were all counted
    # The delay is a delay, not a lock: it passes, and the right password gets in.
    app.state.web.clock = lambda: start + 3
    with _Served(app, conf) as base:
        assert httpx.post(f"{base}/api/token", headers=basic("admin")).status_code == 200
