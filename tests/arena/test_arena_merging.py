"""No model work inside a web request: serving a LoRA checkpoint queues its merge, the arena leaves it out
(saying it is being merged) until a worker has made its copy, and then battles it as that copy."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from feedback_ui.app import create_app
from rlhf.inference import Inference
from rlhf.jobs.embedded import work_once
from rlhf.models import JobStatus, MergeJob
from rlhf.services.checkpoints import merged_dir, register_checkpoint
from tests import factories
from tests.adapters import make_adapter
from tests.api.conftest import PASSWORD, basic
from tests.arena.conftest import HELLO, RATER

pytestmark = pytest.mark.slow
ENGINEER = basic("engineer", PASSWORD)


def _no_merging(*_args, **_kwargs):
    raise AssertionError("a model was merged inside a web request")


def test_an_unmerged_lora_checkpoint_sits_out_the_arena_until_its_merge_job_is_done(
    settings, session, tiny_model_dir, tmp_path, fake_engine, monkeypatch
):
    for role in ("rater", "engineer"):
        factories.user(session, name=role, role=role, password=PASSWORD)
    base = register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    lora = register_checkpoint(
        session=session,
        path=str(make_adapter(tiny_model_dir, tmp_path / "lora")),
        name="lora",
        base_checkpoint_id=base.id,
    )
    pt = register_checkpoint(
        session=session,
        path=str(make_adapter(tiny_model_dir, tmp_path / "pt", kind="prompt_tuning")),
        name="pt",
        base_checkpoint_id=base.id,
    )
    session.commit()
    monkeypatch.setattr("rlhf.modeling.adapters.merge_in_child", _no_merging)
    app = create_app(settings, start_worker=False, inference=Inference(url=fake_engine.url))
    with TestClient(app) as client:
        assert client.post(f"/api/checkpoints/{lora.id}/serve", headers=ENGINEER).status_code == 200
        assert client.post(f"/api/checkpoints/{pt.id}/serve", headers=ENGINEER).status_code == 200
        jobs = client.get("/api/merge-jobs", headers=ENGINEER).json()
        assert [(j["checkpoint_id"], j["target"], j["status"]) for j in jobs] == [(lora.id, "serving", "queued")]
        job_id = jobs[0]["id"]  # a prompt-tuning checkpoint has nothing to merge: no job for it
        assert client.post(f"/api/checkpoints/{lora.id}/serve", headers=ENGINEER).status_code == 200
        assert len(client.get("/api/merge-jobs", headers=ENGINEER).json()) == 1  # serving again: the same job

        # Only the LoRA and the prompt-tuning checkpoint serve: nothing can battle, and the arena says why.
        assert (
            client.post(f"/api/checkpoints/{base.id}/retire", headers=ENGINEER, params={"force": "true"}).status_code
            == 200
        )
        refused = client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert f"checkpoint {lora.id} (lora) is skipped: it is being merged" in detail
        assert f"merge job {job_id}, queued" in detail and "prompt-tuning" in detail

        # With the full base serving again, battles go on without the LoRA: no request ever merges it.
        assert client.post(f"/api/checkpoints/{base.id}/serve", headers=ENGINEER).status_code == 200
        for _ in range(3):
            assert client.post("/api/arena", json={"messages": HELLO}, headers=RATER).status_code == 201
        assert {r["model"] for r in fake_engine.requests} == {base.path}
        assert not merged_dir(settings, lora).exists()

        monkeypatch.undo()
        assert work_once(settings) == 1  # the embedded worker's pass runs the merge job
        session.expire_all()
        assert session.get(MergeJob, job_id).status is JobStatus.succeeded
        monkeypatch.setattr("rlhf.modeling.adapters.merge_in_child", _no_merging)
        fake_engine.requests.clear()
        battle = client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
        assert battle.status_code == 201, battle.text
    # Two checkpoints battle now, the LoRA one as its merged copy (full weights an engine loads).
    assert {r["model"] for r in fake_engine.requests} == {base.path, str(merged_dir(settings, lora))}
