"""``POST /api/labels`` and the run field ``labels``: engineers only, bad values refused with a reason."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from rlhf.models import CheckpointKind, Choice, LabelJob, TrainingRun
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.machine_labels import record_machine_labels
from rlhf.services.run_data import build_snapshot
from rlhf.training.calibration import MIN_HELDOUT
from tests.api.conftest import bearer


def _reward_model(session, heldout=MIN_HELDOUT):
    run = TrainingRun(algorithm="reward", snapshot={"vote_ids": [], "rows": 0, "hash": "x"})
    session.add(run)
    session.flush()
    ckpt = register_checkpoint(
        session=session,
        path="org/rm",
        name="rm",
        kind=CheckpointKind.reward,
        run_id=run.id,
        metrics={"heldout_comparison_ids": list(range(heldout))},
    )
    session.commit()
    return ckpt


@pytest.mark.parametrize("bad", [0.5, 1, 0.2, 7])
def test_a_threshold_outside_the_open_interval_is_a_422_with_the_reason(client, app, session, world, bad):
    rm = _reward_model(session)
    response = client.post(
        "/api/labels",
        headers=bearer(app, world.users["engineer"]),
        json={"reward_checkpoint_id": rm.id, "min_confidence": bad},
    )
    assert response.status_code == 422
    assert "strictly between 0.5 and 1" in response.json()["detail"]
    session.expire_all()
    assert session.exec(select(LabelJob)).all() == []


def test_label_jobs_are_for_engineers_and_queued_for_a_worker(client, app, session, world):
    rm = _reward_model(session)
    body = {"reward_checkpoint_id": rm.id, "min_confidence": 0.9}
    assert client.post("/api/labels", headers=bearer(app, world.users["rater"]), json=body).status_code == 403
    response = client.post("/api/labels", headers=bearer(app, world.users["engineer"]), json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["min_confidence"] == 0.9 and job["reward_checkpoint_id"] == rm.id
    shown = client.get(f"/api/labels/{job['id']}", headers=bearer(app, world.users["engineer"])).json()
    assert shown["id"] == job["id"] and shown["status"] == "queued"
    few = register_checkpoint(session=session, path="org/rm-few", name="rm-few", kind=CheckpointKind.reward)
    session.commit()
    refused = client.post(
        "/api/labels",
        headers=bearer(app, world.users["engineer"]),
        json={"reward_checkpoint_id": few.id, "min_confidence": 0.9},
    )
    assert refused.status_code == 422 and "held-out human votes" in refused.json()["detail"]


def test_a_run_chooses_its_labels_and_defaults_to_people(client, app, session, world):
    headers = bearer(app, world.users["engineer"])
    open_ids = world.comparison_ids[3:]
    record_machine_labels(session=session, reward_checkpoint_id=1, labels=[(i, Choice.b, 0.97) for i in open_ids])
    session.commit()
    default = client.post("/api/runs", headers=headers, json={"algorithm": "dpo"}).json()
    both = client.post("/api/runs", headers=headers, json={"algorithm": "dpo", "labels": "both"}).json()
    assert default["snapshot"]["labels"] == "human" and both["snapshot"]["labels"] == "both"
    # The request froze the votes; the rows are what the worker builds from them.
    assert (default["votes"], both["votes"]) == (3, 6)
    session.expire_all()
    assert build_snapshot(session=session, run=session.get(TrainingRun, default["id"])).rows == 3
    built = build_snapshot(session=session, run=session.get(TrainingRun, both["id"]))
    assert built.rows == 6 and built.machine_rows == 3
    bad = client.post("/api/runs", headers=headers, json={"algorithm": "dpo", "labels": "robots"})
    assert bad.status_code == 422


def test_export_chooses_its_labels_and_sources(client, app, session, world):
    headers = bearer(app, world.users["engineer"])
    open_ids = world.comparison_ids[3:]
    record_machine_labels(session=session, reward_checkpoint_id=1, labels=[(i, Choice.b, 0.97) for i in open_ids])
    session.commit()

    def rows(**params):
        response = client.get("/api/export", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines()]

    human = rows()
    assert len(human) == 3 and not any(r.get("label_source") == "machine" for r in human)
    machine = rows(labels="machine")
    assert sorted(r["comparison_id"] for r in machine) == open_ids
    assert all(r["label_source"] == "machine" and r["label_p"] == 0.97 for r in machine)
    assert len(rows(labels="both")) == 6
    assert rows(source="arena") == [] and len(rows(source=["queue", "arena"])) == 3
    for bad in ({"labels": "robots"}, {"source": "mars"}):
        refused = client.get("/api/export", headers=headers, params=bad)
        assert refused.status_code == 422, refused.text
