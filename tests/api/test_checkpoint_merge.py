"""POST /api/checkpoints/{id}/merge: a full checkpoint from a LoRA one, and 4xx with the reason otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf.services.checkpoints import register_checkpoint
from tests import factories
from tests.adapters import make_adapter
from tests.api.conftest import basic

pytestmark = pytest.mark.slow
sqlite_only = pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)


@sqlite_only
def test_merge_endpoint(client, session, tiny_model_dir, tmp_path):
    factories.user(session, name="eng", role="engineer", password="pw-engineer-1")
    factories.user(session, name="rat", role="rater", password="pw-rater-1")
    base = register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    lora = register_checkpoint(session=session, path=str(make_adapter(tiny_model_dir, tmp_path / "lora")),
                               name="lora", base_checkpoint_id=base.id)
    pt = register_checkpoint(session=session, path=str(make_adapter(tiny_model_dir, tmp_path / "pt",
                                                                    kind="prompt_tuning")),
                             name="pt", base_checkpoint_id=base.id)
    session.commit()
    eng, rater = basic("eng", "pw-engineer-1"), basic("rat", "pw-rater-1")

    assert client.post(f"/api/checkpoints/{lora.id}/merge", headers=rater).status_code == 403
    made = client.post(f"/api/checkpoints/{lora.id}/merge", headers=eng, params={"name": "lora-full"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["name"], body["parent_id"], body["adapter"], body["base_checkpoint_id"]) == \
        ("lora-full", lora.id, None, None)
    assert Path(body["path"], "config.json").is_file()
    listed = {c["id"]: c for c in client.get("/api/checkpoints", headers=eng).json()}
    assert listed[lora.id]["adapter"] == "lora" and listed[lora.id]["base_checkpoint_id"] == base.id

    again = client.post(f"/api/checkpoints/{lora.id}/merge", headers=eng, params={"name": "lora-full"})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    full = client.post(f"/api/checkpoints/{base.id}/merge", headers=eng)
    assert full.status_code == 422 and "nothing to merge" in full.json()["detail"]
    prompt_tuning = client.post(f"/api/checkpoints/{pt.id}/merge", headers=eng)
    assert prompt_tuning.status_code == 409 and "virtual input tokens" in prompt_tuning.json()["detail"]
    assert client.post("/api/checkpoints/999/merge", headers=eng).status_code == 404
