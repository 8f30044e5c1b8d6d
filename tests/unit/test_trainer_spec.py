"""The trainer spec crosses a process line as ``spec.json``: what the worker writes, the trainer reads back."""

import json

from rlhf.modeling.adapters import LORA, ModelRef
from rlhf.training.spec import MergeStep, TrainerSpec


def _spec(**fields) -> TrainerSpec:
    return TrainerSpec(
        run_id=7,
        algorithm="dpo",
        base="merged/base",
        reward_model="merged/reward",
        params={"steps": 2},
        data="d.jsonl",
        output_dir="o",
        work_dir="w",
        progress="p.jsonl",
        result="r.json",
        stop="STOP",
        **fields,
    )


def test_the_spec_and_its_merge_steps_survive_spec_json(tmp_path):
    adapter = ModelRef(
        path="ckpt/lora-2",
        base=ModelRef(path="ckpt/lora-1", base=ModelRef(path="org/base"), adapter=LORA),
        adapter=LORA,
    )
    spec = _spec(
        eval_prompts=[[{"role": "user", "content": "Hi"}]],
        merges=[
            MergeStep(dest="merged/base", ref=adapter),
            MergeStep(
                dest="merged/reward",
                ref=ModelRef(path="ckpt/rm", base=ModelRef(path="org/rm"), adapter=LORA),
                reward=True,
            ),
        ],
    )
    spec.write(tmp_path / "spec.json")
    back = TrainerSpec.read(tmp_path / "spec.json")
    assert back == spec
    assert isinstance(back.merges[0], MergeStep) and back.merges[0].ref.base.base.path == "org/base"
    # On disk a merge step is plain JSON: the ref is ModelRef's own dict.
    stored = json.loads((tmp_path / "spec.json").read_text())["merges"]
    assert stored[0] == {"dest": "merged/base", "ref": adapter.to_dict(), "reward": False}
    assert stored[1]["reward"] is True


def test_a_spec_with_nothing_to_merge(tmp_path):
    spec = _spec()
    spec.write(tmp_path / "spec.json")
    assert TrainerSpec.read(tmp_path / "spec.json") == spec and spec.merges == []
