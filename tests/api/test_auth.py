"""Authentication: Basic, bearer tokens (and their expiry), the login cookie, CSRF, login limits."""

from __future__ import annotations

from rlhf.services.users import hash_password
from tests.api.conftest import PASSWORD, basic, bearer


def test_basic_auth_and_wrong_password(client, world):
    assert client.get("/api/me", headers=basic("rater")).json()["name"] == "rater"
    wrong = client.get("/api/me", headers=basic("rater", "not-the-password"))
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert client.get("/api/me", headers={"Authorization": "Basic !!!not-base64"}).status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer forged.token"}).status_code == 401


def test_token_from_basic_json_or_form(client, world):
    for kwargs in (
        {"headers": basic("engineer")},
        {"json": {"username": "engineer", "password": PASSWORD}},
        {"data": {"username": "engineer", "password": PASSWORD}},
    ):
        response = client.post("/api/token", **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 12 * 3600
        me = client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.json()["role"] == "engineer"
    assert client.post("/api/token", json={"username": "engineer", "password": "nope"}).status_code == 401
    assert client.post("/api/token").status_code == 401


def test_a_token_cannot_renew_itself(client, app, world):
    assert client.post("/api/token", headers=bearer(app, world.users["rater"])).status_code == 401


def test_token_expires(client, app, world):
    ctx = app.state.web
    headers = bearer(app, world.users["rater"])
    assert client.get("/api/me", headers=headers).status_code == 200
    start = ctx.clock()
    ctx.clock = lambda: start + 12 * 3600 - 5
    assert client.get("/api/me", headers=headers).status_code == 200
    ctx.clock = lambda: start + 12 * 3600 + 5
    assert client.get("/api/me", headers=headers).status_code == 401


def test_tokens_end_when_the_user_is_deactivated_or_the_password_changes(client, app, session, world):
    rater = world.users["rater"]
    headers = bearer(app, rater)
    rater.password_hash = hash_password("a-new-password")
    session.add(rater)
    session.commit()
    assert client.get("/api/me", headers=headers).status_code == 401
    headers = bearer(app, rater)
    assert client.get("/api/me", headers=headers).status_code == 200
    assert client.patch(f"/api/users/{rater.id}", json={"active": False}, headers=basic("admin")).status_code == 200
    assert client.get("/api/me", headers=headers).status_code == 401


def test_login_cookie_then_csrf_header_required_for_posts(client, world):
    page = client.get("/login?next=/api/me")
    assert page.status_code == 200 and 'name="password"' in page.text
    response = client.post(
        "/login", data={"username": "rater", "password": PASSWORD, "next": "/api/me"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/api/me"
    cookie = response.headers["set-cookie"]
    assert "rlhf_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Max-Age=43200" in cookie
    assert client.get("/api/me").json()["name"] == "rater"  # the client keeps the cookie

    handout = client.get("/api/comparisons/next").json()
    vote = {"comparison_id": handout["comparison_id"], "choice": "a"}
    refused = client.post("/api/votes", json=vote)
    assert refused.status_code == 403 and "X-Requested-With" in refused.json()["detail"]
    foreign = client.post("/api/votes", json=vote, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert client.post("/api/votes", json=vote, headers={"X-Requested-With": "fetch"}).status_code == 201
    same_site = client.post("/api/votes", json=vote, headers={"Origin": "http://testserver"})
    assert same_site.status_code == 200  # a repeat of the stored vote
    proxied = client.post(
        "/api/votes", json=vote, headers={"Origin": "https://rlhf.example", "X-Forwarded-Host": "rlhf.example"}
    )
    assert proxied.status_code == 200


def test_logout_clears_the_cookie(client, world):
    client.post("/login", data={"username": "rater", "password": PASSWORD})
    assert client.get("/api/me").status_code == 200
    assert client.post("/logout", follow_redirects=False).status_code == 403  # no header, no origin
    response = client.post("/logout", headers={"X-Requested-With": "fetch"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/api/me").status_code == 401


def test_login_page_refuses_bad_passwords_and_open_redirects(client, world):
    bad = client.post("/login", data={"username": "rater", "password": "wrong-one"})
    assert bad.status_code == 401 and "Wrong user name or password" in bad.text
    for target in ("//evil.example/", "https://evil.example/", "/\t/evil.example", "/\\evil.example"):
        response = client.post(
            "/login", data={"username": "rater", "password": PASSWORD, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/", target
    foreign = client.post(
        "/login", data={"username": "rater", "password": PASSWORD}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403


def test_failed_logins_slow_the_name_down_with_growing_delays(client, app, world):
    ctx = app.state.web
    start = ctx.clock()
    ctx.clock = lambda: start  # a frozen clock: a busy machine cannot stretch the delays
    for _ in range(5):
        assert client.post("/login", data={"username": "rater", "password": "guess"}).status_code == 401
    locked = client.post("/login", data={"username": "rater", "password": PASSWORD})
    assert locked.status_code == 429 and "too many failed logins" in locked.text
    token = client.post("/api/token", headers=basic("rater"))
    assert token.status_code == 429 and int(token.headers["Retry-After"]) == 2
    assert client.get("/api/me", headers=basic("rater")).status_code == 429
    # Another user is not slowed down.
    assert client.post("/api/token", headers=basic("engineer")).status_code == 200
    # The delay passes, a wrong guess doubles it, and the right password after it gets in.
    ctx.clock = lambda: start + 2
    assert client.post("/api/token", headers=basic("rater", "guess")).status_code == 401
    assert int(client.post("/api/token", headers=basic("rater")).headers["Retry-After"]) == 4
    ctx.clock = lambda: start + 6
    assert client.post("/api/token", headers=basic("rater")).status_code == 200
    # A success forgets the failures: the next wrong guess costs nothing yet.
    assert client.post("/login", data={"username": "rater", "password": "guess"}).status_code == 401
    assert client.post("/api/token", headers=basic("rater")).status_code == 200


def test_unknown_user_login_fails_like_a_wrong_password(client, world):
    assert client.post("/api/token", headers=basic("nobody")).status_code == 401
