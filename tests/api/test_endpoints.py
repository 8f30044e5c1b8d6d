"""What each endpoint does, and how it refuses bad requests (always a 4xx with a reason)."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
from sqlmodel import func, select

from rlhf.models import Choice, Prompt, TrainingRun, Vote
from tests import factories
from tests.api.conftest import basic, bearer


def _count(session, model):
    session.expire_all()
    return session.exec(select(func.count()).select_from(model)).one()


def test_health(client):
    assert client.get("/api/health").json() == {"status": "ok", "database": "ok", "broker": "embedded"}


def test_openapi_document_and_docs(client):
    doc = client.get("/api/openapi.json").json()
    assert "/api/votes" in doc["paths"] and "/api/comparisons/next" in doc["paths"]
    assert {"HTTPBasic", "HTTPBearer"} <= set(doc["components"]["securitySchemes"])
    assert client.get("/api/docs").status_code == 200


def test_next_and_vote_in_the_order_shown(client, app, session, world):
    headers = bearer(app, world.users["rater"])
    handout = client.get("/api/comparisons/next", headers=headers).json()
    assert set(handout) == {"kind", "comparison_id", "prompt", "a", "b"} and handout["kind"] == "pair"
    assert handout["prompt"][-1]["role"] == "user"
    assert client.get("/api/comparisons/next", headers=headers).json() == handout  # the lease holds
    response = client.post(
        "/api/votes",
        headers=headers,
        json={"comparison_id": handout["comparison_id"], "choice": "a", "rationale": "clearer"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["created"] and body["choice"] == "a" and body["rationale"] == "clearer"
    vote = session.get(Vote, body["id"])
    left_was_stored_a = handout["a"].startswith("left")
    assert vote.choice is (Choice.a if left_was_stored_a else Choice.b)  # stored in the comparison's own order
    assert vote.shown_swapped is not left_was_stored_a


def test_repeated_vote_returns_the_stored_one(client, app, session, world):
    headers = bearer(app, world.users["rater"])
    cid = client.get("/api/comparisons/next", headers=headers).json()["comparison_id"]
    first = client.post(
        "/api/votes", headers={**headers, "Idempotency-Key": "k-1"}, json={"comparison_id": cid, "choice": "b"}
    )
    again = client.post(
        "/api/votes", headers={**headers, "Idempotency-Key": "k-1"}, json={"comparison_id": cid, "choice": "a"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["choice"] == "b"
    assert not again.json()["created"]
    assert _count(session, Vote) == 4  # three from the world, one here
    # The same key for another vote is a conflict, not a silent overwrite.
    other = client.get("/api/comparisons/next", headers=headers).json()["comparison_id"]
    clash = client.post(
        "/api/votes", headers={**headers, "Idempotency-Key": "k-1"}, json={"comparison_id": other, "choice": "a"}
    )
    assert clash.status_code == 409 and "idempotency key" in clash.json()["detail"]
    differ = client.post(
        "/api/votes",
        headers={**headers, "Idempotency-Key": "x"},
        json={"comparison_id": other, "choice": "a", "idempotency_key": "y"},
    )
    assert differ.status_code == 422


def test_idempotency_keys_are_per_rater(client, app, world):
    for name in ("rater", "engineer"):
        headers = {**bearer(app, world.users[name]), "Idempotency-Key": "same-key"}
        cid = client.get("/api/comparisons/next", headers=headers).json()["comparison_id"]
        vote = client.post("/api/votes", headers=headers, json={"comparison_id": cid, "choice": "tie"})
        assert vote.status_code == 201


def test_bad_votes_are_refused_with_a_reason(client, app, world):
    headers = bearer(app, world.users["rater"])
    unknown = client.post("/api/votes", headers=headers, json={"comparison_id": 9999, "choice": "a"})
    assert unknown.status_code == 404 and "no comparison 9999" in unknown.json()["detail"]
    closed = client.post("/api/votes", headers=headers, json={"comparison_id": world.comparison_ids[0], "choice": "a"})
    assert closed.status_code == 409 and "closed" in closed.json()["detail"]
    not_handed = client.post(
        "/api/votes", headers=headers, json={"comparison_id": world.comparison_ids[-1], "choice": "a"}
    )
    assert not_handed.status_code == 409 and "not handed to you" in not_handed.json()["detail"]
    cid = client.get("/api/comparisons/next", headers=headers).json()["comparison_id"]
    choice = client.post("/api/votes", headers=headers, json={"comparison_id": cid, "choice": "left"})
    assert choice.status_code == 422 and "choice" in json.dumps(choice.json()["detail"])
    long = client.post(
        "/api/votes", headers=headers, json={"comparison_id": cid, "choice": "a", "rationale": "x" * 5001}
    )
    assert long.status_code == 422
    nul = client.post("/api/votes", headers=headers, json={"comparison_id": cid, "choice": "a", "rationale": "a\x00b"})
    assert nul.status_code == 422 and nul.json()["error"] == "InvalidInput"
    broken = client.post("/api/votes", headers={**headers, "Content-Type": "application/json"}, content=b"{oops")
    assert broken.status_code == 422


def test_nothing_left_is_204(client, app, world):
    headers = bearer(app, world.users["rater"])
    for _ in range(3):
        cid = client.get("/api/comparisons/next", headers=headers).json()["comparison_id"]
        assert client.post("/api/votes", headers=headers, json={"comparison_id": cid, "choice": "a"}).status_code == 201
    empty = client.get("/api/comparisons/next", headers=headers)
    assert empty.status_code == 204 and empty.content == b""


def test_stats_rater_sees_own_engineer_sees_all(client, app, world):
    rater = client.get("/api/stats", headers=bearer(app, world.users["rater"])).json()
    assert rater["scope"] == "mine" and rater["votes"] == 0 and "votes_by_rater" not in rater
    engineer = client.get("/api/stats", headers=bearer(app, world.users["engineer"])).json()
    assert engineer["scope"] == "all" and engineer["votes"] == 3 and engineer["votes_by_rater"] == {"seed": 3}


def test_prompt_list_is_all_or_nothing_and_names_the_bad_item(client, app, session, world):
    headers = bearer(app, world.users["engineer"])
    before = _count(session, Prompt)
    bad = client.post(
        "/api/prompts",
        headers=headers,
        json=[{"prompt": "fine"}, {"prompt": "also fine"}, {"messages": [{"role": "robot", "content": "x"}]}],
    )
    assert bad.status_code == 422 and bad.json()["detail"].startswith("item 2:")
    assert (
        client.post("/api/prompts", headers=headers, json=[{"prompt": "ok"}, "just a string"])
        .json()["detail"]
        .startswith("item 1:")
    )
    assert client.post("/api/prompts", headers=headers, json={"prompt": "not a list"}).status_code == 422
    assert client.post("/api/prompts", headers=headers, json=[]).status_code == 422
    assert _count(session, Prompt) == before
    good = client.post(
        "/api/prompts?tag=api",
        headers=headers,
        json=[
            {"id": "p1", "prompt": "Name a colour."},
            {
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                "tags": ["greeting"],
            },
        ],
    )
    assert good.status_code == 201 and good.json()["created"] == 2
    again = client.post("/api/prompts", headers=headers, json=[{"id": "p1", "prompt": "Name a colour."}]).json()
    assert again == {"created": 0, "skipped": 1, "ids": []}
    stored = session.get(Prompt, good.json()["ids"][1])
    assert stored.tags == ["api", "greeting"] and stored.messages[0]["role"] == "system"


def test_prompt_upload_jsonl_csv_parquet(client, app, session, world):
    headers = bearer(app, world.users["engineer"])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"prompt": "From parquet"}]), buffer)
    files = [
        ("a.jsonl", b'{"prompt": "From jsonl"}\n{"prompt": "Second"}\n'),
        ("b.csv", b'prompt,tags\nFrom csv,"x,y"\n'),
        ("c.parquet", buffer.getvalue()),
    ]
    for name, data in files:
        response = client.post("/api/prompts/upload", headers=headers, files={"file": (name, data)})
        assert response.status_code == 201, response.text
    bad = client.post(
        "/api/prompts/upload", headers=headers, files={"file": ("d.jsonl", b'{"prompt": "ok"}\n{"prompt": 5}\n')}
    )
    assert bad.status_code == 422 and "line 2" in bad.json()["detail"]
    assert client.post("/api/prompts/upload", headers=headers, files={"file": ("e.txt", b"x")}).status_code == 422
    assert client.post("/api/prompts/upload", headers=headers).status_code == 422  # no file at all


def test_oversized_bodies_are_413(client, app, world):
    headers = bearer(app, world.users["engineer"])
    big = [{"prompt": "x" * 1000}] * 3000  # about 3 MiB of JSON
    assert client.post("/api/prompts", headers=headers, json=big).status_code == 413
    # Uploads may be bigger (20 MiB) ...
    lines = b"".join(b'{"prompt": "%d %s"}\n' % (i, b"y" * 1000) for i in range(3000))
    assert client.post("/api/prompts/upload", headers=headers, files={"file": ("big.jsonl", lines)}).status_code == 201
    # ... up to a point.
    huge = client.post("/api/prompts/upload", headers=headers, files={"file": ("huge.jsonl", b"z" * (21 << 20))})
    assert huge.status_code == 413


def test_export_downloads(client, app, world):
    headers = bearer(app, world.users["engineer"])
    jsonl = client.get("/api/export", headers=headers)
    assert jsonl.status_code == 200 and "attachment" in jsonl.headers["content-disposition"]
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert len(rows) == 3 and rows[0]["chosen"][0]["content"].startswith("left")
    parquet = client.get("/api/export?format=parquet&ties=keep", headers=headers)
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 3 and "tie" in table.column_names
    assert client.get("/api/export?format=csv", headers=headers).status_code == 422
    assert client.get("/api/export?ties=maybe", headers=headers).status_code == 422


def test_checkpoints_serve_and_retire(client, app, world):
    headers = bearer(app, world.users["engineer"])
    (ckpt,) = client.get("/api/checkpoints", headers=headers).json()
    assert ckpt["status"] == "serving" and ckpt["kind"] == "policy" and ckpt["created_at"].endswith(("Z", "+00:00"))
    # The only serving policy: retiring it would leave nothing to generate from, so it needs force.
    refused = client.post(f"/api/checkpoints/{ckpt['id']}/retire", headers=headers)
    assert refused.status_code == 409 and "last serving policy" in refused.json()["detail"]
    forced = client.post(f"/api/checkpoints/{ckpt['id']}/retire?force=true", headers=headers)
    assert forced.json()["status"] == "retired"
    assert client.post(f"/api/checkpoints/{ckpt['id']}/serve", headers=headers).json()["status"] == "serving"
    assert client.post("/api/checkpoints/999/serve", headers=headers).status_code == 404


def test_generate_queues_a_job(client, app, world):
    headers = bearer(app, world.users["engineer"])
    response = client.post("/api/generate", headers=headers, json={"limit": 4, "target_votes": 2, "max_new_tokens": 32})
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["params"]["sampling"]["max_new_tokens"] == 32
    assert job["params"]["ask_strength"] is False
    asking = client.post("/api/generate", headers=headers, json={"limit": 4, "ask_strength": True}).json()
    assert asking["params"]["ask_strength"] is True
    assert client.get(f"/api/generate/{job['id']}", headers=headers).json()["id"] == job["id"]
    assert client.post("/api/generate", headers=headers, json={"limit": 0}).status_code == 422
    assert client.get("/api/generate/999", headers=headers).status_code == 404


def test_runs_start_list_show_cancel(client, app, session, world):
    headers = bearer(app, world.users["engineer"])
    response = client.post(
        "/api/runs", headers=headers, json={"algorithm": "dpo", "params": {"steps": 5}, "serve": True}
    )
    assert response.status_code == 202
    run = response.json()
    assert run["status"] == "queued" and run["votes"] == 3 and run["serve_on_success"]
    # Frozen in the request; the worker builds the rows.
    assert "vote_ids" not in run["snapshot"] and run["snapshot"]["hash"] is None
    assert session.get(TrainingRun, run["id"]).created_by == world.users["engineer"].id
    assert [r["id"] for r in client.get("/api/runs", headers=headers).json()][:2] == [run["id"], world.run_id]
    from rlhf.services.runs import log_step

    log_step(session=session, run_id=run["id"], step=1, values={"loss": 0.7})
    session.commit()  # services flush; here the test is the unit of work
    detail = client.get(f"/api/runs/{run['id']}", headers=headers).json()
    assert detail["log"] == [{"step": 1, "loss": 0.7}]
    cancelled = client.post(f"/api/runs/{run['id']}/cancel", headers=headers).json()
    assert cancelled["status"] == "cancelled"
    again = client.post(f"/api/runs/{run['id']}/cancel", headers=headers)
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    for body, reason in [
        ({"algorithm": "pp0"}, "algorithm"),
        ({"algorithm": "dpo", "params": {"stepz": 1}}, "stepz"),
        ({"algorithm": "ppo"}, "needs a reward model"),
    ]:
        refused = client.post("/api/runs", headers=headers, json=body)
        assert refused.status_code == 422 and reason in json.dumps(refused.json()["detail"])
    no_base = client.post("/api/runs", headers=headers, json={"algorithm": "dpo", "base_checkpoint_id": 99})
    assert no_base.status_code == 404
    assert client.get("/api/runs/999", headers=headers).status_code == 404


def test_queueing_without_a_broker_is_503_and_starts_nothing(settings, session, world):
    from fastapi.testclient import TestClient

    from feedback_ui.app import create_app
    from workers.dispatch import CeleryQueue

    dead = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})  # nothing listens there
    app = create_app(dead, jobs=CeleryQueue(dead), start_worker=False)
    client = TestClient(app)
    headers = bearer(app, world.users["engineer"])
    before = len(session.exec(select(TrainingRun)).all())
    response = client.post("/api/runs", headers=headers, json={"algorithm": "dpo"})
    assert response.status_code == 503 and response.json()["error"] == "BrokerUnavailable"
    assert "broker" in response.json()["detail"] and response.headers["Retry-After"]
    session.expire_all()
    assert len(session.exec(select(TrainingRun)).all()) == before  # no run left queued with nobody to run it
    health = client.get("/api/health").json()
    assert health["status"] == "degraded" and health["broker"].startswith("unavailable")


def test_leaderboard_ranks_checkpoints(client, app, session, world):
    from rlhf.models import Response
    from rlhf.services.checkpoints import register_checkpoint
    from rlhf.services.comparisons import open_comparison
    from rlhf.services.votes import record_vote

    other = register_checkpoint(session=session, path="org/other", name="other", serve=True)
    judge = factories.user(session, "judge")
    for n in range(6):
        ra = Response(prompt_id=1, checkpoint_id=world.checkpoint_id, text=f"x{n}")
        rb = Response(prompt_id=1, checkpoint_id=other.id, text=f"y{n}")
        session.add_all([ra, rb])
        session.flush()
        comp = open_comparison(session=session, prompt_id=1, response_a_id=ra.id, response_b_id=rb.id)
        record_vote(session=session, rater=judge, comparison_id=comp.id, choice="b" if n < 5 else "a", as_shown=False)
    board = client.get("/api/leaderboard?bootstrap=50", headers=bearer(app, world.users["rater"])).json()
    assert board["votes"] == 6 and board["bootstrap"] == 50
    first, second = board["standings"]
    assert first["name"] == "other" and first["rank"] == 1 and first["wins"] == 5
    assert first["ci_low"] <= first["rating"] <= first["ci_high"] and second["rating"] < first["rating"]
    assert client.get("/api/leaderboard?bootstrap=5000", headers=bearer(app, world.users["rater"])).status_code == 422


def test_guidelines_round_trip(client, app, world):
    rater, engineer = bearer(app, world.users["rater"]), bearer(app, world.users["engineer"])
    assert client.get("/api/guidelines", headers=rater).json() == {"markdown": "", "updated_at": None}
    for text in ("# Rules\n\nPrefer *helpful* answers.", "# Rules v2"):
        assert client.put("/api/guidelines", headers=engineer, json={"markdown": text}).status_code == 200
    body = client.get("/api/guidelines", headers=rater).json()
    assert body["markdown"] == "# Rules v2" and body["updated_at"]
    assert client.put("/api/guidelines", headers=engineer, json={"markdown": "x" * 100_001}).status_code == 422


def test_users_admin(client, app, world):
    admin = bearer(app, world.users["admin"])
    names = [u["name"] for u in client.get("/api/users", headers=admin).json()]
    assert names == ["rater", "engineer", "admin", "seed"]
    assert "password_hash" not in client.get("/api/users", headers=admin).text
    created = client.post(
        "/api/users", headers=admin, json={"name": "carol", "role": "engineer", "password": "carols-password"}
    )
    assert created.status_code == 201 and created.json()["role"] == "engineer"
    assert client.get("/api/me", headers=basic("carol", "carols-password")).json()["name"] == "carol"
    taken = client.post("/api/users", headers=admin, json={"name": "carol", "password": "another-pass"})
    assert taken.status_code == 409
    assert client.post("/api/users", headers=admin, json={"name": "dave", "password": "short"}).status_code == 422
    assert client.post("/api/users", headers=admin, json={"name": "x y", "password": "long-enough"}).status_code == 422
    assert (
        client.post(
            "/api/users", headers=admin, json={"name": "eve", "role": "god", "password": "long-enough"}
        ).status_code
        == 422
    )
    me = world.users["admin"].id
    assert client.patch(f"/api/users/{me}", headers=admin, json={"active": False}).status_code == 409
    assert client.patch("/api/users/999", headers=admin, json={"active": False}).status_code == 404
