"""Nothing secret reaches the logs: not passwords (right or wrong), not the secret key, not
tokens, session cookies or Basic credentials, even at DEBUG with JSON lines.

The real server (``rlhf serve``) is driven through logins, token requests, user creation
and refused requests, then its whole log is searched.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from rlhf import db
from rlhf.models import Role
from rlhf.services.users import create_user
from tests.faults.conftest import serve  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration
SECRET_KEY = "s3cret-key-that-must-never-be-logged-4f1d"
ADMIN_PASSWORD = "admin-password-never-logged-9c2e"
NEW_PASSWORD = "new-user-password-never-logged-7b3a"
GUESS = "wrong-guess-never-logged-1a8f"


def test_logs_carry_no_secret(serve, tmp_path, sqlite_template):
    import shutil

    (tmp_path / "data").mkdir()
    shutil.copy(sqlite_template, tmp_path / "data" / "rlhf.db")
    url = f"sqlite:///{tmp_path / 'data' / 'rlhf.db'}"
    with db.session_scope(db.get_engine(url)) as s:
        create_user(session=s, name="root", role=Role.admin, password=ADMIN_PASSWORD)
    db.get_engine(url).dispose()
    server = serve(url, RLHF_SECRET_KEY=SECRET_KEY, RLHF_LOG_FORMAT="json", RLHF_LOG_LEVEL="DEBUG")
    secrets = [
        SECRET_KEY,
        ADMIN_PASSWORD,
        NEW_PASSWORD,
        GUESS,
        base64.b64encode(f"root:{ADMIN_PASSWORD}".encode()).decode(),
    ]
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.post("/login", data={"username": "root", "password": GUESS}).status_code == 401
        login = client.post("/login", data={"username": "root", "password": ADMIN_PASSWORD})
        assert login.status_code == 303
        secrets.append(client.cookies["rlhf_session"])
        assert client.get("/api/me").json()["name"] == "root"
        token = client.post("/api/token", json={"username": "root", "password": ADMIN_PASSWORD}).json()
        secrets.append(token["access_token"])
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        created = client.post(
            "/api/users",
            headers={**bearer, "X-Requested-With": "x"},
            json={"name": "rita", "role": "rater", "password": NEW_PASSWORD},
        )
        assert created.status_code == 201
        rater = client.post("/api/token", auth=("rita", NEW_PASSWORD)).json()["access_token"]
        secrets.append(rater)
        assert client.get("/api/users", headers={"Authorization": f"Bearer {rater}"}).status_code == 403
        assert client.get("/api/me", auth=("root", ADMIN_PASSWORD)).status_code == 200
        assert client.get("/api/me", headers={"Authorization": f"Bearer {rater}x"}).status_code == 401
        for _ in range(6):  # into the login limit
            client.post("/api/token", auth=("rita", GUESS))
        assert client.post("/api/token", auth=("rita", GUESS)).status_code == 429
        assert (
            client.post("/api/users", headers=bearer, json={"name": "bad name!", "password": NEW_PASSWORD}).status_code
            == 422
        )
    server.stop()
    log = server.log_path.read_text(errors="replace")
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(records) >= 10, log[-2000:]  # the requests were logged, as JSON lines
    assert any("/api/token" in r["message"] for r in records), "access log lines are expected"
    for secret in secrets:
        assert secret not in log, f"a secret ({secret[:6]}…) appears in the log"
