"""``/api/judges`` and ``/api/judge-jobs``: admins register judges, engineers read them and queue their jobs;
a refusal names the field, and a judge's API key never comes back."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rlhf.models import Judge, JudgeJob
from tests.api.conftest import bearer

KEY = "sk-test-0123456789-never-shown"
JUDGE = {"name": "gpt-judge", "url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini", "api_key_env": "JUDGE_KEY"}
TEMPLATE = "Question: {{ prompt }}\nA: {{ a }}\nB: {{ b }}\nSay [[A]], [[B]] or [[C]]."


@pytest.fixture
def judge_key(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", KEY)


def test_only_admins_register_judges_and_engineers_read_them(client, app, world, judge_key):
    rater, engineer, admin = (bearer(app, world.users[r]) for r in ("rater", "engineer", "admin"))
    assert client.post("/api/judges", headers=rater, json=JUDGE).status_code == 403
    assert client.post("/api/judges", headers=engineer, json=JUDGE).status_code == 403
    assert client.get("/api/judges", headers=rater).status_code == 403
    assert client.get("/api/judges", headers=engineer).json() == []

    created = client.post("/api/judges", headers=admin, json={**JUDGE, "template": TEMPLATE, "swap": False})
    assert created.status_code == 201, created.text
    judge = created.json()
    assert (judge["name"], judge["url"], judge["model"], judge["api_key_env"]) == (
        "gpt-judge",
        "http://127.0.0.1:9/v1",
        "gpt-4o-mini",
        "JUDGE_KEY",
    )
    assert (judge["template"], judge["swap"], judge["concurrency"], judge["audit_rate"]) == (TEMPLATE, False, 4, 0.1)

    (listed,) = client.get("/api/judges", headers=engineer).json()
    assert listed["id"] == judge["id"]
    assert (listed["audit"]["votes"], listed["audit"]["overlap"], listed["audit"]["label_p"]) == (0, 0, None)
    assert "only 0 pairs" in listed["audit"]["reason"]
    for ref in (judge["id"], "gpt-judge"):
        shown = client.get(f"/api/judges/{ref}", headers=engineer)
        assert shown.status_code == 200, shown.text
        assert shown.json()["id"] == judge["id"] and shown.json()["audit"]["agreement_pairs"] == 0
    assert client.get("/api/judges/nobody", headers=engineer).status_code == 404
    assert client.get(f"/api/judges/{judge['id']}", headers=rater).status_code == 403


@pytest.mark.parametrize(
    "change, param, words",
    [
        ({"url": "ftp://example.com"}, "url", "http(s)://"),
        ({"template": "A: {{ a }}\nSay [[A]], [[B]] or [[C]]."}, "template", "{{ b }}"),
        ({"concurrency": 0}, "concurrency", "from 1 to 64"),
        ({"audit_rate": 2}, "audit_rate", "from 0 to 1"),
        ({"api_key_env": "not a name"}, "api_key_env", "environment variable"),
        ({"name": "no spaces please"}, "name", "letters, digits"),
        ({"url": None, "model": None, "checkpoint_id": 999}, None, "no checkpoint"),
    ],
)
def test_a_bad_judge_is_refused_naming_the_field(client, app, session, world, change, param, words):
    response = client.post("/api/judges", headers=bearer(app, world.users["admin"]), json={**JUDGE, **change})
    body = response.json()
    assert response.status_code == (404 if param is None else 422), response.text
    assert body.get("param") == param and words in body["detail"]
    session.expire_all()
    assert session.exec(select(Judge)).all() == []


def test_a_name_taken_is_a_conflict(client, app, world):
    admin = bearer(app, world.users["admin"])
    assert client.post("/api/judges", headers=admin, json=JUDGE).status_code == 201
    again = client.post("/api/judges", headers=admin, json={**JUDGE, "model": "another"})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]


def test_the_api_key_is_never_taken_nor_shown(client, app, session, world, judge_key):
    admin, engineer = bearer(app, world.users["admin"]), bearer(app, world.users["engineer"])
    sent = client.post("/api/judges", headers=admin, json={**JUDGE, "api_key": KEY})
    assert sent.status_code == 422 and sent.json()["param"] == "api_key" and "api_key_env" in sent.json()["detail"]
    answers = [sent, client.post("/api/judges", headers=admin, json=JUDGE)]
    job = client.post("/api/judges/gpt-judge/jobs", headers=engineer, json={})
    answers += [
        job,
        client.get("/api/judges", headers=engineer),
        client.get("/api/judges/gpt-judge", headers=engineer),
        client.get(f"/api/judge-jobs/{job.json()['job_id']}", headers=engineer),
        client.get("/api/openapi.json"),
    ]
    assert all(r.status_code < 300 for r in answers[1:]), [r.text for r in answers]
    assert not [r.request.url for r in answers if KEY in r.text]
    assert "api_key" not in client.get("/api/openapi.json").json()["components"]["schemas"]["JudgeCreate"]["properties"]


def test_a_judge_job_is_queued_for_a_worker_and_shown(client, app, session, world):
    admin, engineer = bearer(app, world.users["admin"]), bearer(app, world.users["engineer"])
    judge = client.post("/api/judges", headers=admin, json=JUDGE).json()
    rater = bearer(app, world.users["rater"])
    assert client.post("/api/judges/gpt-judge/jobs", headers=rater, json={}).status_code == 403

    queued = client.post(f"/api/judges/{judge['id']}/jobs", headers=engineer, json={"source": "queue", "limit": 5})
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "queued"
    job_id = queued.json()["job_id"]
    shown = client.get(f"/api/judge-jobs/{job_id}", headers=engineer).json()
    assert (shown["status"], shown["judge_id"]) == ("queued", judge["id"])
    assert shown["params"] == {"source": "queue", "limit": 5}
    assert shown["result"] == {} and shown["error"] is None and shown["started_at"] is None
    assert [j["id"] for j in client.get("/api/judges/gpt-judge", headers=engineer).json()["jobs"]] == [job_id]
    assert client.get(f"/api/judge-jobs/{job_id + 1}", headers=engineer).status_code == 404
    assert client.post("/api/judges/nobody/jobs", headers=engineer, json={}).status_code == 404


@pytest.mark.parametrize(
    "body, param", [({"source": "mars"}, "source"), ({"limit": 0}, "limit"), ({"limit": -3}, "limit")]
)
def test_a_bad_judge_job_is_refused_naming_the_field(client, app, session, world, body, param):
    client.post("/api/judges", headers=bearer(app, world.users["admin"]), json=JUDGE)
    refused = client.post("/api/judges/gpt-judge/jobs", headers=bearer(app, world.users["engineer"]), json=body)
    assert refused.status_code == 422 and refused.json()["param"] == param, refused.text
    session.expire_all()
    assert session.exec(select(JudgeJob)).all() == []
