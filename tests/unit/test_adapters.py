"""Adapter checkpoints: stored as adapters, named over their base by id, loaded over it, merged by a worker.

The merge jobs themselves run in tests/api/test_checkpoint_merge.py and tests/arena/test_arena_merging.py
(a worker reads committed rows; these tests roll back)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.modeling.adapters import BASE_FILE, PEFT_CONFIG, merge_in_child
from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
from rlhf.models import Checkpoint, CheckpointStatus
from rlhf.services.checkpoints import (
    get_checkpoint,
    merged_dir,
    model_ref,
    register_checkpoint,
    retire_checkpoint,
    served_name,
)
from rlhf.services.merges import create_merge_job
from tests.adapters import make_adapter

pytestmark = pytest.mark.slow
# Models load slowly: the database side of these is the same on PostgreSQL (see test_migrations).
sqlite_only = pytest.mark.parametrize("rollback_db_url", ["sqlite"], indirect=True)
PROMPTS = [[{"role": "user", "content": "Tell me about cats."}], [{"role": "user", "content": "Where is Lisbon?"}]]
SAMPLING = SamplingParams(seed=7, max_new_tokens=16)


def _texts(ref):
    return [[s.text for s in per] for per in sample_checkpoint(ref, PROMPTS, n=3, params=SAMPLING)]


@pytest.fixture
def lora(session, tiny_model_dir, tmp_path):
    base = register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    folder = make_adapter(tiny_model_dir, tmp_path / "lora")
    ckpt = register_checkpoint(session=session, path=str(folder), name="lora", base_checkpoint_id=base.id)
    session.flush()
    return base, ckpt


@sqlite_only
def test_an_adapter_names_its_base_by_id_and_samples_exactly_like_its_merged_form(session, settings, lora, tmp_path):
    base, ckpt = lora
    assert (ckpt.adapter, ckpt.base_checkpoint_id, ckpt.kind.value) == ("lora", base.id, "policy")
    folder = Path(ckpt.path)
    config = json.loads((folder / PEFT_CONFIG).read_text())
    assert config["base_model_name_or_path"] is None  # no path from another machine
    assert json.loads((folder / BASE_FILE).read_text())["base_checkpoint_id"] == base.id
    assert not (folder / "config.json").exists()

    merged = merge_in_child(model_ref(session=session, checkpoint=ckpt), tmp_path / "merged")  # a merge job's step
    assert Path(merged, "config.json").is_file() and not Path(merged, PEFT_CONFIG).exists()
    adapter_texts = _texts(model_ref(session=session, checkpoint=ckpt))
    assert adapter_texts == _texts(str(merged))  # same seed, same tokens
    assert adapter_texts != _texts(base.path)  # and the adapter does change the model


@sqlite_only
def test_a_retired_base_still_loads_and_a_missing_one_is_named(session, settings, lora, tmp_path):
    base, ckpt = lora
    retire_checkpoint(session=session, checkpoint_id=base.id, force=True)
    assert get_checkpoint(session=session, checkpoint_id=base.id).status is CheckpointStatus.retired
    assert _texts(model_ref(session=session, checkpoint=ckpt))

    moved = tmp_path / "moved"
    shutil.copytree(base.path, moved)
    original = base.path
    shutil.rmtree(original)
    with pytest.raises(NotFound, match=rf"base checkpoint {base.id} \(tiny\), whose folder .* is gone"):
        model_ref(session=session, checkpoint=ckpt)
    base.path = str(moved)  # a base registered again at its new place loads again: the adapter names the id
    session.add(base)
    assert _texts(model_ref(session=session, checkpoint=ckpt))

    session.delete(session.get(Checkpoint, base.id))
    session.flush()
    with pytest.raises(NotFound, match=rf"adapter over checkpoint {base.id}, which no longer exists"):
        model_ref(session=session, checkpoint=ckpt)
    shutil.copytree(moved, original)  # the session's tiny model for the tests after this one


@sqlite_only
def test_merge_refuses_a_full_checkpoint_and_a_prompt_tuning_one_saying_why(
    session, settings, lora, tiny_model_dir, tmp_path
):
    base, ckpt = lora
    with pytest.raises(InvalidInput, match="full model already"):
        create_merge_job(session=session, checkpoint_id=base.id)
    create_merge_job(session=session, checkpoint_id=ckpt.id, name="full")
    with pytest.raises(Conflict, match="a merge job is making one"):  # two jobs never race for one name
        create_merge_job(session=session, checkpoint_id=ckpt.id, name="full")
    folder = make_adapter(tiny_model_dir, tmp_path / "pt", kind="prompt_tuning")
    pt = register_checkpoint(session=session, path=str(folder), name="pt", base_checkpoint_id=base.id)
    assert pt.adapter == "prompt_tuning"
    with pytest.raises(Conflict, match="virtual input tokens"):
        create_merge_job(session=session, checkpoint_id=pt.id)
    # It still samples, in this process, over its base.
    assert _texts(model_ref(session=session, checkpoint=pt)) != _texts(base.path)


@sqlite_only
def test_an_adapter_folder_that_names_no_base_is_refused(session, tiny_model_dir, tmp_path):
    folder = make_adapter(tiny_model_dir, tmp_path / "loose")
    with pytest.raises(InvalidInput, match="names no base checkpoint"):
        register_checkpoint(session=session, path=str(folder), name="loose")


@sqlite_only
def test_an_engine_is_handed_a_lora_checkpoint_s_merged_copy_and_asking_never_merges(
    session, settings, lora, monkeypatch
):
    def no_merging(*_args, **_kwargs):
        raise AssertionError("served_name runs inside web requests: it must never merge")

    monkeypatch.setattr("rlhf.modeling.adapters.merge_in_child", no_merging)
    _, ckpt = lora
    with pytest.raises(Conflict, match=r"no merged copy for the inference engine yet: a merge job makes it"):
        served_name(session=session, settings=settings, checkpoint=ckpt)
    monkeypatch.undo()

    merge_in_child(model_ref(session=session, checkpoint=ckpt), merged_dir(settings, ckpt))  # what its job does
    served = served_name(session=session, settings=settings, checkpoint=ckpt)
    assert served == str(merged_dir(settings, ckpt)) and served != ckpt.path
    assert Path(served, "model.safetensors").is_file() and not Path(served, PEFT_CONFIG).exists()  # full weights
    assert _texts(served) == _texts(model_ref(session=session, checkpoint=ckpt))
    settings.inference_models = {"lora": "lora-on-vllm"}  # an engine that serves the adapter by name needs none
    assert served_name(session=session, settings=settings, checkpoint=ckpt) == "lora-on-vllm"
