"""Logins that end when they should: logout ends that one login, "log out everywhere" and an
admin end all of a user's, and an ended cookie is refused by the API and the pages alike.

A cookie or token names a row of the sessions table; each request checks that row.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from rlhf.models import AuthSession, User
from tests.api.conftest import PASSWORD, basic

pytestmark = pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)
XHR = {"X-Requested-With": "fetch"}


def _browser(app, name: str) -> TestClient:
    """A second browser: its own cookie jar, logged in through the form."""
    browser = TestClient(app)
    assert (
        browser.post("/login", data={"username": name, "password": PASSWORD}, follow_redirects=False).status_code == 303
    )
    return browser


def _bearer(client, name: str) -> dict[str, str]:
    token = client.post("/api/token", headers=basic(name)).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_logout_ends_that_cookie_while_other_logins_keep_working(app, client, world):
    laptop = _browser(app, "rater")
    phone = _browser(app, "rater")
    script = _bearer(client, "rater")
    old_cookie = laptop.cookies.get("rlhf_session")
    assert laptop.get("/api/me").status_code == 200

    assert laptop.post("/logout", headers=XHR, follow_redirects=False).status_code == 303
    # The old cookie, replayed as it was (a copy kept by an attacker or another tab), is refused everywhere.
    replay = TestClient(app, cookies={"rlhf_session": old_cookie})
    assert replay.get("/api/me").status_code == 401
    page = replay.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert replay.get("/config").status_code == 401  # the UI's own routes ask the same question
    # The rater's other devices and scripts are untouched.
    assert phone.get("/api/me").status_code == 200
    assert client.get("/api/me", headers=script).status_code == 200


def test_log_out_everywhere_ends_every_cookie_and_token_of_that_user_only(app, client, world):
    laptop, phone = _browser(app, "rater"), _browser(app, "rater")
    script = _bearer(client, "rater")
    other = _bearer(client, "engineer")
    listed = client.get("/api/sessions", headers=script).json()
    assert sorted(s["kind"] for s in listed) == ["cookie", "cookie", "token"]
    assert [s["current"] for s in listed if s["kind"] == "token"] == [True]

    ended = client.delete("/api/sessions", headers=script)
    assert ended.status_code == 200 and ended.json() == {"ended": 3}
    assert laptop.get("/api/me").status_code == 401
    assert phone.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=script).status_code == 401
    assert client.get("/api/me", headers=other).status_code == 200
    # Logging in again works: the password is unchanged.
    assert _browser(app, "rater").get("/api/me").status_code == 200


def test_the_pages_log_out_everywhere_button_posts_to_logout(app, client, world):
    laptop, phone = _browser(app, "rater"), _browser(app, "rater")
    assert laptop.post("/logout", data={"everywhere": "1"}, headers=XHR, follow_redirects=False).status_code == 303
    assert laptop.get("/api/me").status_code == 401
    assert phone.get("/api/me").status_code == 401


def test_an_admin_ends_a_users_sessions_and_nobody_else_may(app, client, world, session):
    rater_id = session.exec(select(User.id).where(User.name == "rater")).one()
    laptop = _browser(app, "rater")
    script = _bearer(client, "rater")
    assert client.delete(f"/api/users/{rater_id}/sessions", headers=basic("engineer")).status_code == 403
    assert client.delete(f"/api/users/{rater_id}/sessions", headers=script).status_code == 403
    ended = client.delete(f"/api/users/{rater_id}/sessions", headers=basic("admin"))
    assert ended.status_code == 200 and ended.json() == {"ended": 2}
    assert laptop.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=script).status_code == 401
    assert client.delete("/api/users/999999/sessions", headers=basic("admin")).status_code == 404


def test_a_revoked_login_stays_revoked_and_expired_rows_are_cleared(app, client, world, session):
    ctx = app.state.web
    start = ctx.clock()
    script = _bearer(client, "rater")
    client.delete("/api/sessions", headers=script)
    ctx.clock = lambda: start + ctx.token_ttl_s + 2 * 86_400
    _bearer(client, "rater")  # a new login clears the user's long-expired rows
    ctx.clock = lambda: start
    rows = session.exec(select(AuthSession).join(User).where(User.name == "rater")).all()
    assert len(rows) == 1 and rows[0].revoked_at is None
    assert client.get("/api/me", headers=script).status_code == 401


def test_a_token_signed_with_the_key_but_of_the_wrong_shape_is_refused_not_a_crash(app, client, world, session):
    """Only the secret key can sign one; a payload that is not ours must give 401, never 500."""
    ctx = app.state.web
    forge = ctx.tokens._serializer.dumps  # signs anything, as only the key's holder can
    for payload in (
        [1, 2, 3],
        "text",
        None,
        {"uid": 1},
        {"uid": True, "sid": 1, "pw": "x"},
        {"uid": "1", "sid": "1", "pw": "x"},
        {"uid": 1, "sid": 2**70, "pw": "x"},
    ):
        answer = client.get("/api/me", headers={"Authorization": f"Bearer {forge(payload)}"})
        assert answer.status_code == 401, (payload, answer.text)
    # A cookie or token from before logins were kept (no session id) is refused: log in again.
    rater = session.exec(select(User).where(User.name == "rater")).one()
    old = ctx.tokens.dumps({"uid": rater.id, "pw": ctx.fingerprint(rater)})
    assert client.get("/api/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    # A token signed "in the future" (a clock moved back) is refused too.
    token = _bearer(client, "rater")
    start = ctx.clock()
    ctx.clock = lambda: start - 5
    assert client.get("/api/me", headers=token).status_code == 401
    ctx.clock = lambda: start
    assert client.get("/api/me", headers=token).status_code == 200


def test_signing_is_itsdangerous_at_the_pinned_version_with_the_apps_clock(app):
    """The signer reads the web context's clock through itsdangerous' get_timestamp (a subclass)."""
    from importlib.metadata import version

    assert version("itsdangerous") == "2.2.0"
    ctx = app.state.web
    start = ctx.clock()
    signed = ctx.sessions.dumps({"uid": 1})
    assert ctx.sessions.loads(signed, 60) == {"uid": 1}
    assert ctx.tokens.loads(signed, 60) is None  # a cookie is no token
    ctx.clock = lambda: start + 61
    assert ctx.sessions.loads(signed, 60) is None
    assert ctx.sessions.loads(signed + "x", 10**6) is None


def test_the_command_line_ends_a_users_logins(app, client, world):
    from typer.testing import CliRunner

    from rlhf_cli.main import app as cli

    laptop = _browser(app, "rater")
    script = _bearer(client, "rater")
    other = _bearer(client, "engineer")
    result = CliRunner().invoke(cli, ["users", "logout", "rater"])
    assert result.exit_code == 0 and "ended 2 sessions of rater" in result.output
    assert laptop.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=script).status_code == 401
    assert client.get("/api/me", headers=other).status_code == 200
