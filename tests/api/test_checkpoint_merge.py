"""POST /api/checkpoints/{id}/merge: a queued merge job that the embedded worker runs, and 4xx with the reason
when there is nothing to merge."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from feedback_ui.app import create_app
from rlhf.inference import Inference
from rlhf.services.checkpoints import register_checkpoint
from tests import factories
from tests.adapters import make_adapter
from tests.api.conftest import basic

pytestmark = pytest.mark.slow


def _until_finished(client, headers, job_id: int, timeout_s: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/merge-jobs/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"merge job {job_id} did not finish in {timeout_s} s: {job}")


def test_merge_endpoint_queues_a_job_the_worker_runs(
    settings, session, tiny_model_dir, tmp_path, test_engine_url, monkeypatch
):
    factories.user(session, name="eng", role="engineer", password="pw-engineer-1")
    factories.user(session, name="rat", role="rater", password="pw-rater-1")
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
    eng, rater = basic("eng", "pw-engineer-1"), basic("rat", "pw-rater-1")
    request_thread = []

    def merge_in_child(ref, dest):  # the real merge, noting which thread asked for it
        import threading

        request_thread.append(threading.current_thread().name)
        return real_merge(ref, dest)

    from rlhf.modeling import adapters

    real_merge = adapters.merge_in_child
    monkeypatch.setattr(adapters, "merge_in_child", merge_in_child)
    app = create_app(settings, start_worker=True, inference=Inference(url=test_engine_url))
    with TestClient(app) as client:
        assert client.post(f"/api/checkpoints/{lora.id}/merge", headers=rater).status_code == 403
        made = client.post(f"/api/checkpoints/{lora.id}/merge", headers=eng, params={"name": "lora-full"})
        assert made.status_code == 202, made.text
        queued = made.json()
        assert (
            queued["status"],
            queued["checkpoint_id"],
            queued["target"],
            queued["name"],
            queued["output_checkpoint_id"],
        ) == ("queued", lora.id, "checkpoint", "lora-full", None)
        again = client.post(f"/api/checkpoints/{lora.id}/merge", headers=eng, params={"name": "lora-full"})
        assert again.status_code == 409 and "a merge job is making one" in again.json()["detail"]

        done = _until_finished(client, eng, queued["id"])
        assert done["status"] == "succeeded", done["error"]
        assert request_thread == ["rlhf-embedded-worker"]  # the worker merged it, not the request
        listed = {c["id"]: c for c in client.get("/api/checkpoints", headers=eng).json()}
        new = listed[done["output_checkpoint_id"]]
        assert (new["name"], new["parent_id"], new["adapter"], new["base_checkpoint_id"]) == (
            "lora-full",
            lora.id,
            None,
            None,
        )
        assert Path(new["path"], "config.json").is_file() and done["result"]["checkpoint_id"] == new["id"]
        assert listed[lora.id]["adapter"] == "lora" and listed[lora.id]["base_checkpoint_id"] == base.id
        jobs = client.get("/api/merge-jobs", headers=eng, params={"checkpoint_id": lora.id}).json()
        assert [j["id"] for j in jobs] == [queued["id"]]
        assert client.get("/api/merge-jobs", headers=rater).status_code == 403

        taken = client.post(f"/api/checkpoints/{lora.id}/merge", headers=eng, params={"name": "lora-full"})
        assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
        full = client.post(f"/api/checkpoints/{base.id}/merge", headers=eng)
        assert full.status_code == 422 and "nothing to merge" in full.json()["detail"]
        prompt_tuning = client.post(f"/api/checkpoints/{pt.id}/merge", headers=eng)
        assert prompt_tuning.status_code == 409 and "virtual input tokens" in prompt_tuning.json()["detail"]
        assert client.post("/api/checkpoints/999/merge", headers=eng).status_code == 404
        assert client.get("/api/merge-jobs/999", headers=eng).status_code == 404
