"""A refused request's body: the neutral sentence in ``detail``, and the request field it concerns,
the values that field may take and what to do first as fields; never a command-line flag."""

from fastapi.testclient import TestClient
from sqlmodel import select

from feedback_ui.app import create_app
from rlhf.models import Checkpoint
from tests import factories
from tests.api.conftest import basic


def _no_command_line(body: dict) -> dict:
    assert "--" not in body["detail"] and "rlhf " not in body["detail"], body
    return body


def test_refusals_carry_the_field_and_the_remedy(settings, session):
    factories.user(session, name="eng", role="engineer", password="correct-horse-battery")
    session.commit()
    headers = basic("eng")
    with TestClient(create_app(settings, start_worker=False)) as client:
        nothing = client.post("/api/generate", headers=headers, json={})
        assert nothing.status_code == 422
        assert _no_command_line(nothing.json())["remedy"] == "serve_checkpoint"

        factories.comparisons(session, [("x", "y")], serve=True)
        session.commit()
        ppo = client.post("/api/runs", headers=headers, json={"algorithm": "ppo"})
        assert ppo.status_code == 422
        body = _no_command_line(ppo.json())
        assert "ppo needs a reward model" in body["detail"] and body["error"] == "InvalidInput"
        assert (body["param"], body["remedy"]) == ("reward_checkpoint_id", "train_reward_model")
        assert "allowed" not in body

        uncertain = client.post("/api/generate", headers=headers, json={"select": "uncertain"})
        body = _no_command_line(uncertain.json())
        assert (uncertain.status_code, body["param"], body["allowed"]) == (422, "select", ["random"])

        (ckpt,) = session.exec(select(Checkpoint)).all()
        kept = client.post(f"/api/checkpoints/{ckpt.id}/retire", headers=headers)
        body = _no_command_line(kept.json())
        assert (kept.status_code, body["param"]) == (409, "force") and "last serving policy" in body["detail"]
        assert client.post(f"/api/checkpoints/{ckpt.id}/retire?force=true", headers=headers).status_code == 200


def test_the_documented_error_body_names_the_fields(settings):
    doc = create_app(settings, start_worker=False).openapi()
    assert {"detail", "error", "param", "allowed", "remedy"} <= set(doc["components"]["schemas"]["Error"]["properties"])
