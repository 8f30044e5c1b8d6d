"""Who may call what: every endpoint × anonymous / rater / engineer / admin, from one table.

A role below the endpoint's minimum gets 403, no credentials 401, anyone allowed the
endpoint's success status.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import basic

RANK = {"anonymous": -1, "rater": 0, "engineer": 1, "admin": 2}


def _vote(client, headers, world):
    handout = client.get("/api/comparisons/next", headers=headers).json()
    return {"json": {"comparison_id": handout["comparison_id"], "choice": "a"}}


def _own_vote(client, headers, world):
    """The path of a vote this caller just cast (only one's own vote can be undone)."""
    handout = client.get("/api/comparisons/next", headers=headers).json()
    vote = client.post("/api/votes", headers=headers, json={"comparison_id": handout["comparison_id"], "choice": "a"})
    return {"url": f"/api/votes/{vote.json()['id']}"}


def _voted_battle(client, headers, world):
    """A battle this user started and voted on: its names are theirs to see."""
    battle = client.post("/api/arena", json={"messages": ARENA_PROMPT}, headers=headers).json()
    client.post("/api/votes", json={"comparison_id": battle["comparison_id"], "choice": "a"}, headers=headers)
    return {"url": f"/api/arena/{battle['comparison_id']}"}


ARENA_PROMPT = [{"role": "user", "content": "Name a colour."}]

# method, path (formatted with the world), minimum role, success status, request arguments
ENDPOINTS = [
    ("GET", "/api/health", "anonymous", 200, None),
    ("POST", "/api/token", "rater", 200, None),
    ("GET", "/api/me", "rater", 200, None),
    ("GET", "/api/comparisons/next", "rater", 200, None),
    ("POST", "/api/votes", "rater", 201, _vote),
    ("POST", "/api/votes?next=true", "rater", 201, _vote),
    ("DELETE", "/api/votes/{vote_id}", "rater", 200, _own_vote),
    ("POST", "/api/comparisons/{comparison_id}/skip", "rater", 201, None),
    ("POST", "/api/leases/release", "rater", 200, None),
    ("GET", "/api/stats", "rater", 200, None),
    ("GET", "/api/leaderboard", "rater", 200, None),
    ("GET", "/api/guidelines", "rater", 200, None),
    ("PUT", "/api/guidelines", "engineer", 200, {"json": {"markdown": "# Be kind"}}),
    ("POST", "/api/prompts", "engineer", 201, {"json": [{"prompt": "Name a colour."}]}),
    (
        "POST",
        "/api/prompts/upload",
        "engineer",
        201,
        {"files": {"file": ("p.jsonl", b'{"prompt": "Name a colour."}\n', "application/jsonl")}},
    ),
    ("GET", "/api/export", "engineer", 200, None),
    ("GET", "/api/export?format=parquet&ties=keep", "engineer", 200, None),
    ("GET", "/api/export?aggregate=none&exclude_flagged=false", "engineer", 200, None),
    ("POST", "/api/comparisons/{comparison_id}/gold", "engineer", 200, {"json": {"answer": "b"}}),
    (
        "POST",
        "/api/gold/upload",
        "engineer",
        201,
        {"files": {"file": ("g.jsonl", b'{"prompt": "2+2?", "chosen": "4", "rejected": "5"}\n', "application/jsonl")}},
    ),
    ("GET", "/api/checkpoints", "engineer", 200, None),
    ("POST", "/api/checkpoints/{checkpoint_id}/serve", "engineer", 200, None),
    ("POST", "/api/checkpoints/{checkpoint_id}/retire?force=true", "engineer", 200, None),
    ("POST", "/api/generate", "engineer", 202, {"json": {"limit": 2}}),
    ("GET", "/api/generate/{job_id}", "engineer", 200, None),
    ("POST", "/api/runs", "engineer", 202, {"json": {"algorithm": "dpo", "params": {"steps": 3}}}),
    ("GET", "/api/runs", "engineer", 200, None),
    ("GET", "/api/runs/{run_id}", "engineer", 200, None),
    ("POST", "/api/runs/{run_id}/cancel", "engineer", 200, None),
    ("POST", "/api/arena", "rater", 201, {"json": {"messages": ARENA_PROMPT}}),
    ("GET", "/api/arena/{comparison_id}", "rater", 200, _voted_battle),
    ("POST", "/api/demonstrations", "rater", 201, {"json": {"messages": ARENA_PROMPT, "text": "Blue."}}),
    ("GET", "/api/demonstrations", "engineer", 200, None),
    ("GET", "/api/users", "admin", 200, None),
    ("POST", "/api/users", "admin", 201, {"json": {"name": "newbie", "role": "rater", "password": "long-password"}}),
    ("PUT", "/api/users/{seed_id}/excluded", "engineer", 200, {"json": {"excluded": True}}),
    ("PATCH", "/api/users/{seed_id}", "admin", 200, {"json": {"active": False}}),
]
CASES = [
    pytest.param(method, path, minimum, success, args, who, id=f"{method} {path} as {who}")
    for method, path, minimum, success, args in ENDPOINTS
    for who in RANK
]


@pytest.mark.parametrize("method, path, minimum, success, args, who", CASES)
def test_role_matrix(client, world, method, path, minimum, success, args, who):
    headers = {} if who == "anonymous" else basic(who)
    url = path.format(
        checkpoint_id=world.checkpoint_id,
        job_id=world.job_id,
        run_id=world.run_id,
        seed_id=world.seed_rater.id,
        comparison_id=world.comparison_ids[-1],
        vote_id=1,
    )
    kwargs = (
        args(client, headers, world)
        if callable(args) and RANK[who] >= RANK[minimum]
        else (args if isinstance(args, dict) else {})
    )
    url = kwargs.pop("url", url)
    response = client.request(method, url, headers=headers, **kwargs)
    if RANK[who] >= RANK[minimum]:
        expected = success
    else:
        expected = 401 if who == "anonymous" else 403
    assert response.status_code == expected, response.text
    if expected == 401:
        assert "Basic" in response.headers["WWW-Authenticate"]
    if expected in (401, 403):
        assert response.json()["detail"]


def test_every_route_is_in_the_table(app):
    """A new endpoint without a row here would have no tested permissions."""
    listed = {(m, p.split("?")[0]) for m, p, *_ in ENDPOINTS}
    for route in app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/api/") or path in ("/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect"):
            continue
        for method in route.methods - {"HEAD"}:
            row = (method, path.replace("{user_id}", "{seed_id}"))
            assert row in listed, f"{method} {path} has no row in ENDPOINTS"
