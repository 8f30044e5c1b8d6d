"""Who may call what: every endpoint × anonymous / rater / engineer / admin, from one table.

A role below the endpoint's minimum gets 403, no credentials 401, anyone allowed the
endpoint's success status.
"""

from __future__ import annotations

import itertools

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from rlhf.models import Algorithm, Checkpoint, CheckpointKind, TrainingRun, stored_id
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.judges import create_judge_job, register_judge
from rlhf.services.machine_labels import create_label_job
from rlhf.services.merges import create_merge_job
from rlhf.training.calibration import MIN_HELDOUT
from tests import factories
from tests.api.conftest import basic

RANK = {"anonymous": -1, "rater": 0, "engineer": 1, "admin": 2}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# The app has about 55 API routes: far fewer found means the enumeration missed some, not that they are gone.
MIN_API_ROUTES = 40
JUDGE = "the-judge"  # registered by the judge callables; each case has a database of its own
JUDGE_URL = "http://judge.example:8000"
_judge_names = itertools.count()

# Request arguments may be a callable (client, headers, world, session) -> kwargs, run only for a role
# that is allowed: it makes the data the success case needs. A "url" in its kwargs replaces the path.


def _vote(client, headers, world, session):
    handout = client.get("/api/comparisons/next", headers=headers).json()
    return {"json": {"comparison_id": handout["comparison_id"], "choice": "a"}}


def _own_vote(client, headers, world, session):
    """The path of a vote this caller just cast (only one's own vote can be undone)."""
    handout = client.get("/api/comparisons/next", headers=headers).json()
    vote = client.post("/api/votes", headers=headers, json={"comparison_id": handout["comparison_id"], "choice": "a"})
    return {"url": f"/api/votes/{vote.json()['id']}"}


def _own_vote_strength(client, headers, world, session):
    """A strength for this caller's own A vote, just cast."""
    return {**_own_vote(client, headers, world, session), "json": {"strength": 2}}


def _voted_battle(client, headers, world, session):
    """A battle this user started and voted on: its names are theirs to see."""
    battle = client.post("/api/arena", json={"messages": ARENA_PROMPT}, headers=headers).json()
    client.post("/api/votes", json={"comparison_id": battle["comparison_id"], "choice": "a"}, headers=headers)
    return {"url": f"/api/arena/{battle['comparison_id']}"}


def _handed_ranking(client, headers, session) -> int:
    """A ranking just handed to this caller (only a ranking one was handed can be ordered or passed on)."""
    ranking = factories.ranking(session, ["w", "x", "y"])
    assert client.get("/api/comparisons/next?kinds=ranking", headers=headers).json()["ranking_id"] == ranking.id
    return ranking.id


def _ranking_order(client, headers, world, session):
    return {"json": {"ranking_id": _handed_ranking(client, headers, session), "order": [[2], [0, 1]]}}


def _own_ranking_order(client, headers, world, session):
    """The order of a ranking this caller just stored (only one's own order can be taken back)."""
    body = _ranking_order(client, headers, world, session)["json"]
    client.post("/api/rankings", headers=headers, json=body)
    return {"url": f"/api/rankings/{body['ranking_id']}/order"}


def _ranking_to_skip(client, headers, world, session):
    return {"url": f"/api/rankings/{_handed_ranking(client, headers, session)}/skip"}


def _reward_model(session) -> int:
    """A reward model with enough held-out votes to calibrate on, as a reward run stores it (never loaded here)."""
    run = TrainingRun(algorithm=Algorithm.reward, snapshot={"vote_ids": [], "rows": 0, "hash": "x"})
    session.add(run)
    session.flush()
    rm = register_checkpoint(
        session=session,
        path="org/rm",
        name="rm",
        kind=CheckpointKind.reward,
        run_id=run.id,
        metrics={"heldout_comparison_ids": list(range(MIN_HELDOUT))},
    )
    session.commit()
    return stored_id(rm)


def _label_request(client, headers, world, session):
    return {"json": {"reward_checkpoint_id": _reward_model(session), "min_confidence": 0.9}}


def _label_job(client, headers, world, session):
    job = create_label_job(session=session, reward_checkpoint_id=_reward_model(session), min_confidence=0.9)
    session.commit()
    return {"url": f"/api/labels/{job.id}"}


def _adapter(session, world) -> int:
    """A LoRA checkpoint over the world's model, as an adapter run stores it (a merge is queued, never run here)."""
    lora = Checkpoint(name="lora", path="org/lora", adapter="lora", base_checkpoint_id=world.checkpoint_id)
    session.add(lora)
    session.commit()
    return stored_id(lora)


def _adapter_to_merge(client, headers, world, session):
    return {"url": f"/api/checkpoints/{_adapter(session, world)}/merge"}


def _merge_job(client, headers, world, session):
    job = create_merge_job(session=session, checkpoint_id=_adapter(session, world))
    session.commit()
    return {"url": f"/api/merge-jobs/{job.id}"}


def _new_judge(client, headers, world, session):
    """A judge to register, under a name no other call used."""
    return {"json": {"name": f"judge-{next(_judge_names)}", "url": JUDGE_URL, "model": "judge-model"}}


def _judge(session) -> int:
    judge = register_judge(session=session, name=JUDGE, url=JUDGE_URL, model="judge-model")
    session.commit()
    return stored_id(judge)


def _with_judge(client, headers, world, session):
    _judge(session)
    return {}


def _judge_job_request(client, headers, world, session):
    _judge(session)
    return {"json": {"source": "all", "limit": 2}}


def _judge_job(client, headers, world, session):
    job = create_judge_job(session=session, judge=_judge(session))
    session.commit()
    return {"url": f"/api/judge-jobs/{job.id}"}


def _with_merge_job(client, headers, world, session):
    _merge_job(client, headers, world, session)
    return {}


ARENA_PROMPT = [{"role": "user", "content": "Name a colour."}]

# method, path (formatted with the world), minimum role, success status, request arguments
ENDPOINTS = [
    ("GET", "/api/health", "anonymous", 200, None),
    ("POST", "/api/token", "rater", 200, None),
    ("GET", "/api/sessions", "rater", 200, None),
    ("DELETE", "/api/sessions", "rater", 200, None),
    ("GET", "/api/me", "rater", 200, None),
    ("GET", "/api/comparisons/next", "rater", 200, None),
    ("POST", "/api/votes", "rater", 201, _vote),
    ("POST", "/api/votes?next=true", "rater", 201, _vote),
    ("DELETE", "/api/votes/{vote_id}", "rater", 200, _own_vote),
    ("PATCH", "/api/votes/{vote_id}", "rater", 200, _own_vote_strength),
    ("POST", "/api/comparisons/{comparison_id}/skip", "rater", 201, None),
    ("POST", "/api/rankings", "rater", 201, _ranking_order),
    ("DELETE", "/api/rankings/{ranking_id}/order", "rater", 200, _own_ranking_order),
    ("POST", "/api/rankings/{ranking_id}/skip", "rater", 201, _ranking_to_skip),
    ("POST", "/api/leases/release", "rater", 200, None),
    ("GET", "/api/stats", "rater", 200, None),
    ("GET", "/api/leaderboard", "rater", 200, None),
    ("GET", "/api/guidelines", "rater", 200, None),
    ("PUT", "/api/guidelines", "engineer", 200, {"json": {"markdown": "# Be kind"}}),
    ("GET", "/api/votes", "engineer", 200, None),
    ("GET", "/api/votes/kinds", "engineer", 200, None),
    ("DELETE", "/api/votes?kind=simulated", "engineer", 200, None),
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
    ("POST", "/api/labels", "engineer", 202, _label_request),
    ("GET", "/api/labels/{job_id}", "engineer", 200, _label_job),
    ("POST", "/api/checkpoints/{checkpoint_id}/merge", "engineer", 202, _adapter_to_merge),
    ("GET", "/api/merge-jobs", "engineer", 200, _with_merge_job),
    ("GET", "/api/merge-jobs/{job_id}", "engineer", 200, _merge_job),
    ("POST", "/api/judges", "admin", 201, _new_judge),
    ("GET", "/api/judges", "engineer", 200, _with_judge),
    ("GET", "/api/judges/{judge}", "engineer", 200, _with_judge),
    ("POST", "/api/judges/{judge}/jobs", "engineer", 202, _judge_job_request),
    ("GET", "/api/judge-jobs/{job_id}", "engineer", 200, _judge_job),
    ("GET", "/api/users", "admin", 200, None),
    ("POST", "/api/users", "admin", 201, {"json": {"name": "newbie", "role": "rater", "password": "long-password"}}),
    ("PUT", "/api/users/{seed_id}/excluded", "engineer", 200, {"json": {"excluded": True}}),
    ("PATCH", "/api/users/{seed_id}", "admin", 200, {"json": {"active": False}}),
    ("DELETE", "/api/users/{seed_id}/sessions", "admin", 200, None),
]
CASES = [
    pytest.param(method, path, minimum, success, args, who, id=f"{method} {path} as {who}")
    for method, path, minimum, success, args in ENDPOINTS
    for who in RANK
]


@pytest.mark.parametrize("method, path, minimum, success, args, who", CASES)
def test_role_matrix(client, world, session, method, path, minimum, success, args, who):
    headers = {} if who == "anonymous" else basic(who)
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
    kwargs = (
        args(client, headers, world, session)
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


def _api_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every API route: those in the OpenAPI schema, and any left out of it."""
    found = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }
    # Routes left out of the schema; with recent FastAPI an included router's routes are not listed here.
    found |= {
        (method, route.path)
        for route in app.routes
        if isinstance(route, (APIRoute, Route))
        for method in route.methods or ()
    }
    return {
        (method, path.replace("{user_id}", "{seed_id}"))
        for method, path in found
        if path.startswith("/api/")
        and method != "HEAD"
        and path != "/api/openapi.json"
        and not path.startswith("/api/docs")
    }


def test_every_route_is_in_the_table(app):
    """A new endpoint without a row here would have no tested permissions."""
    routes = _api_routes(app)
    assert len(routes) >= MIN_API_ROUTES, f"only {len(routes)} API routes found: {sorted(routes)}"
    listed = {(m, p.split("?")[0]) for m, p, *_ in ENDPOINTS}
    missing = sorted(routes - listed)
    assert not missing, f"no row in ENDPOINTS for: {missing}"
