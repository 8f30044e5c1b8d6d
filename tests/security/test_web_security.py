"""Sessions and tokens that expire, cookie requests that must come from our pages, escaped
pages, argon2 hashes, and the example secret key refused.

Kept beside what ``tests/api/test_auth.py`` already proves (Basic and bearer auth, token
expiry at the default lifetime, login limits, logout, open redirects) and
``tests/browser/test_rate.py`` (responses rendered as text in a real browser).
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback_ui.app import create_app
from feedback_ui.ui.render import render_markdown
from rlhf.settings import get_settings, reset_settings_cache
from tests.api.conftest import PASSWORD, basic
from tests.api.test_roles import ENDPOINTS, JUDGE

sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@sqlite_only
def test_session_and_token_lifetimes_come_from_the_settings(settings, world, monkeypatch):
    monkeypatch.setenv("RLHF_SESSION_TTL_S", "60")
    monkeypatch.setenv("RLHF_TOKEN_TTL_S", "30")
    reset_settings_cache()
    app = create_app(get_settings(), start_worker=False)
    ctx, start = app.state.web, app.state.web.clock()
    ctx.clock = lambda: start  # frozen: on a busy machine, issuing could otherwise fall a second or more later
    with TestClient(app) as client:
        token = client.post("/api/token", headers=basic("rater")).json()
        assert token["expires_in"] == 30
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        login = client.post("/login", data={"username": "rater", "password": PASSWORD}, follow_redirects=False)
        assert "Max-Age=60" in login.headers["set-cookie"]
        ctx.clock = lambda: start + 29
        assert client.get("/api/me", headers=bearer).status_code == 200
        assert client.get("/api/me").status_code == 200  # the cookie
        ctx.clock = lambda: start + 31
        assert client.get("/api/me", headers=bearer).status_code == 401
        assert client.get("/api/me").status_code == 200
        ctx.clock = lambda: start + 61
        assert client.get("/api/me").status_code == 401
        page = client.get("/", follow_redirects=False)  # the UI sends an expired session back to the login form
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


STATE_CHANGING = [
    (m, p, minimum, ok, args) for m, p, minimum, ok, args in ENDPOINTS if m not in ("GET", "HEAD") and p != "/api/token"
]


@sqlite_only
@pytest.mark.parametrize(
    "method, path, minimum, success, args", STATE_CHANGING, ids=[f"{m} {p}" for m, p, *_ in STATE_CHANGING]
)
def test_cookie_requests_that_change_state_must_come_from_this_site(
    client, world, session, method, path, minimum, success, args
):
    """A page on another site can make the browser send our cookie; only our own pages may change things."""
    assert client.post("/login", data={"username": "admin", "password": PASSWORD}).status_code == 200
    url = path.format(
        checkpoint_id=world.checkpoint_id,
        job_id=world.job_id,
        run_id=world.run_id,
        seed_id=world.seed_rater.id,
        comparison_id=world.comparison_ids[-1],
        vote_id=1,
        ranking_id=1,
        judge=JUDGE,
    )
    kwargs = args(client, {"X-Requested-With": "fetch"}, world, session) if callable(args) else dict(args or {})
    url = kwargs.pop("url", url)
    for forged in (
        {},
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "null"},
    ):
        refused = client.request(method, url, headers=forged, **kwargs)
        assert refused.status_code == 403, (forged, refused.text)
    allowed = client.request(method, url, headers={"X-Requested-With": "fetch"}, **kwargs)
    assert allowed.status_code == success, allowed.text


@sqlite_only
def test_the_login_page_escapes_what_it_echoes(client, world):
    evil = '"><script>alert(1)</script>'
    page = client.post("/login", data={"username": evil, "password": "wrong-password", "next": evil})
    assert page.status_code == 401
    assert "<script>alert(1)</script>" not in page.text and html.escape(evil) in page.text
    form = client.get("/login", params={"next": '/"><img src=x onerror=alert(1)>'})
    assert "<img" not in form.text


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs


MARKDOWN_TAGS = {
    "p",
    "em",
    "strong",
    "code",
    "pre",
    "a",
    "ul",
    "ol",
    "li",
    "blockquote",
    "hr",
    "br",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "s",
}
HOSTILE = st.sampled_from(
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "<iframe src=//x>",
        "[click](javascript:alert(1))",
        "<a href='javascript:x'>y</a>",
        "<svg onload=alert(1)>",
        "<style>*{}</style>",
        "`<b>`",
        "```\n<script>\n```",
        "&lt;",
        "**bold**",
        "\n\n",
        "| a | b |\n|---|---|\n| <i>x</i> | y |",
        "[x](http://example.com)",
        "![img](http://example.com/i.png)",
        "<http://example.com>",
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(parts=st.lists(HOSTILE | st.text(st.characters(exclude_characters="[]<>"), max_size=20), max_size=8))
def test_rendered_text_never_carries_markup_of_its_own(parts):
    """Prompts, responses, rationales and guidelines are rendered with this: raw HTML stays text,
    and links (images become links) open in a new tab without a script URL."""
    parser = _Tags()
    parser.feed(render_markdown("".join(parts)))
    assert parser.tags <= MARKDOWN_TAGS, parser.tags
    for name, value in parser.attrs:
        assert not name.startswith("on") and name not in ("src", "style"), (name, value)
        if name == "href":
            assert not (value or "").strip().lower().startswith(("javascript:", "data:", "vbscript:")), value


@sqlite_only
def test_passwords_are_stored_as_argon2id_hashes(client, world, session):
    from sqlmodel import select

    from rlhf.models import User
    from rlhf.services.users import verify_password

    created = client.post(
        "/api/users",
        headers=basic("admin"),
        json={"name": "newbie", "role": "rater", "password": "a-long-new-password"},
    )
    assert created.status_code == 201 and "password" not in created.text and "argon2" not in created.text
    session.expire_all()
    for user in session.exec(select(User)):
        assert user.password_hash.startswith("$argon2id$"), user.name
        assert PASSWORD not in user.password_hash and "a-long-new-password" not in user.password_hash
    newbie = session.exec(select(User).where(User.name == "newbie")).one()
    assert verify_password(newbie, "a-long-new-password") and not verify_password(newbie, "a-long-new-passwore")


def test_the_production_hasher_is_memory_hard(tmp_path, sqlite_template):
    """The CLI's ``users add`` with the default argon2id cost (not the tests' cheap one)."""
    import shutil

    shutil.copy(sqlite_template, tmp_path / "rlhf.db")
    env = {
        **os.environ,
        "RLHF_DATA_DIR": str(tmp_path),
        "RLHF_SECRET_KEY": "a-real-secret-for-this-test",
        "PYTHONPATH": ROOT,
    }
    subprocess.run(
        [sys.executable, "-m", "rlhf_cli.main", "users", "add", "ann", "--role", "rater", "--password-stdin"],
        env=env,
        input="ann-password-1\n",
        text=True,
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    import sqlite3

    (stored,) = sqlite3.connect(tmp_path / "rlhf.db").execute("SELECT password_hash FROM user").fetchone()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored
    assert "ann-password-1" not in stored


@pytest.mark.parametrize("secret", ["changeme", " ChangeMe ", "abc", "fifteen-chars-x"])
def test_serve_refuses_an_example_or_short_secret_key_outside_demo_mode(tmp_path, secret):
    env = {
        **os.environ,
        "RLHF_DATA_DIR": str(tmp_path),
        "RLHF_SECRET_KEY": secret,
        "RLHF_DEMO": "false",
        "PYTHONPATH": ROOT,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rlhf_cli.main", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "RLHF_SECRET_KEY" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _ui_event(client, button: str, data: list, headers: dict):
    config = client.get("/config").json()
    component = next(
        c["id"] for c in config["components"] if c.get("type") == "button" and c.get("props", {}).get("value") == button
    )
    fn_index = next(
        d["id"] for d in config["dependencies"] if any(t[0] == component and t[1] == "click" for t in d["targets"])
    )
    return client.post(
        "/gradio_api/queue/join",
        headers=headers,
        json={
            "data": data,
            "fn_index": fn_index,
            "session_hash": f"s{time.monotonic_ns()}",
            "event_data": None,
            "trigger_id": component,
        },
    )


@sqlite_only
def test_ui_events_from_another_site_are_refused(client, world):
    """The console's buttons act with the engineer's cookie; a foreign page must not press them."""
    assert client.post("/login", data={"username": "engineer", "password": PASSWORD}).status_code == 200
    for foreign in (
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "http://evil.example:80/x"},
        {"Origin": "null"},
    ):
        refused = _ui_event(client, "Save guidelines", ["# planted"], foreign)
        assert refused.status_code == 403, (foreign, refused.text)
    time.sleep(1.0)
    assert client.get("/api/guidelines", headers=basic("engineer")).json()["markdown"] == ""
    accepted = _ui_event(client, "Save guidelines", ["# from the console"], {"Origin": "http://testserver"})
    assert accepted.status_code == 200
    wait = time.monotonic() + 10
    while client.get("/api/guidelines", headers=basic("engineer")).json()["markdown"] != "# from the console":
        assert time.monotonic() < wait, "the same-site event was not processed"
        time.sleep(0.2)
