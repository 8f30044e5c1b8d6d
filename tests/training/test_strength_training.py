"""Short real runs on the tiny model: ``use_strength`` changes what the reward model and DPO train.

The rows go through the trainer's data file (``strength`` on every row, null where none
was said) and are read back as the trainer process reads them. Each pair of runs has the
same rows and seed, so a difference is the parameter's; a run without the parameter
repeats exactly, so the difference is not noise.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from safetensors.torch import load_file

from rlhf.dataset_rows import read_preference_rows
from rlhf.training.params import build_params

pytestmark = pytest.mark.slow

WRITTEN = [
    {
        "prompt": [{"role": "user", "content": f"Name a colour {i}"}],
        "chosen": [{"role": "assistant", "content": f"Blue, like the sea {i}"}],
        "rejected": [{"role": "assistant", "content": f"No {i}"}],
        "comparison_id": i,
        "source": "queue",
        "vote_id": 100 + i,
        "rater_id": 1,
        "label_p": 1.0,
        "rationales": [],
        "strength": s,
    }
    for i, s in enumerate([3, None, 2, 1, 3, 3, None, 2, 1, 3])
]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    data = tmp_path_factory.mktemp("strength") / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in WRITTEN))
    return read_preference_rows(data)


def _weights(folder) -> str:
    weights = load_file(str(folder / "model.safetensors"))
    return hashlib.sha256(b"".join(weights[k].float().numpy().tobytes() for k in sorted(weights))).hexdigest()


def _runs(train, rows, tmp_path, tiny_model_dir, algorithm, base, variants):
    from transformers import set_seed

    out = []
    for i, extra in enumerate(variants):
        params, _ = build_params(algorithm, {**base, **extra})
        set_seed(params.seed)  # as the trainer process does: the reward head starts from it
        folder = tmp_path / f"{algorithm}-{i}"
        metrics = train(
            base=str(tiny_model_dir), rows=rows, output_dir=folder, params=params, work_dir=tmp_path / f"w{i}"
        )
        out.append((metrics, _weights(folder)))
    return out


def test_strength_changes_what_a_reward_run_trains(rows, tmp_path, tiny_model_dir):
    from rlhf.training.reward import train_reward

    base = {"steps": 3, "batch_size": 4, "eval_fraction": 0.2}
    off, again, on = _runs(
        train_reward, rows, tmp_path, tiny_model_dir, "reward", base, [{}, {}, {"use_strength": "true"}]
    )
    assert off == again
    assert on[1] != off[1], "use_strength left the reward model's weights as they were"
    assert on[0]["train_loss"] != off[0]["train_loss"]
    trained = [r for r in rows if r["comparison_id"] not in on[0]["heldout_comparison_ids"]]
    assert on[0]["strength_pairs"] == sum(r["strength"] is not None for r in trained) == 6
    assert "strength_pairs" not in off[0]


def test_strength_changes_what_a_dpo_run_trains(rows, tmp_path, tiny_model_dir):
    from rlhf.training.dpo import train_dpo

    base = {"steps": 3, "batch_size": 4}
    off, again, on = _runs(train_dpo, rows, tmp_path, tiny_model_dir, "dpo", base, [{}, {}, {"use_strength": "true"}])
    assert off == again
    assert on[1] != off[1], "use_strength left the policy's weights as they were"
    assert on[0]["train_loss"] != off[0]["train_loss"]
    assert on[0]["strength_pairs"] == 8 and "strength_pairs" not in off[0]
