"""A ranking trains as one judgement: its pairs' weights in the reward model's and DPO's loss, on the tiny model.

The loss of a batch is computed by hand (mean over pairs of weight × the pair's whole term,
strength shift and soft label included) and compared with the trainers'; then short real runs
show that ``ranking_weight=pair`` trains something else than the default, each pair of runs
having the same rows and seed (and a repeated run repeating exactly), so a difference is the
parameter's. The rows go through the trainer's data file and are read back as the trainer
process reads them.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from rlhf.dataset_rows import read_preference_rows
from rlhf.training.params import build_params
from tests.training.test_strength_training import _runs
from tests.unit.test_strength_loss import _dpo_logit, _dpo_trainer, _scores

pytestmark = pytest.mark.slow


def _written(i, source="queue", ranking=None, strength=None, label_p=1.0):
    return {
        "prompt": [{"role": "user", "content": f"Name a colour {i}"}],
        "chosen": [{"role": "assistant", "content": f"Blue, like the sea {i}"}],
        "rejected": [{"role": "assistant", "content": f"No {i}"}],
        "comparison_id": i,
        "source": source,
        **({"ranking_id": ranking[0], "ranking_size": ranking[1]} if ranking else {}),
        "vote_id": 100 + i,
        "rater_id": 1,
        "label_p": label_p,
        "rationales": [],
        "strength": strength,
    }


# A ranking of 4 (6 pairs), one of 3 (3 pairs) and four plain pairs.
WRITTEN = (
    [_written(i, "ranking", (1, 4)) for i in range(6)]
    + [_written(6 + i, "ranking", (2, 3)) for i in range(3)]
    + [_written(9 + i) for i in range(4)]
)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    data = tmp_path_factory.mktemp("ranking") / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in WRITTEN))
    return read_preference_rows(data)


def _batch_rows():
    """Two pairs of a ranking of 4, one of a ranking of 3, one plain: with strengths and soft labels,
    the first row plain (TRL's reward collator reads margins only if the first example has one)."""
    return [
        _written(0, strength=None, label_p=0.8),
        _written(1, "ranking", (1, 4), strength=3, label_p=1.0),
        _written(2, "ranking", (1, 4), strength=1, label_p=0.7),
        _written(3, "ranking", (2, 3), strength=2, label_p=0.9),
    ]


def test_the_reward_loss_is_the_mean_of_weight_times_each_pair_s_whole_term(tmp_path, tiny_model_dir):
    from rlhf.training.reward import build_reward_trainer
    from rlhf.training.soft_reward import SoftRewardTrainer

    params, _ = build_params("reward", {"use_strength": "true"})
    trainer, _, _ = build_reward_trainer(base=str(tiny_model_dir), rows=_batch_rows(), params=params, work_dir=tmp_path)
    assert isinstance(trainer, SoftRewardTrainer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    w = batch["pair_weight"]
    assert torch.allclose(w, torch.tensor([1.0, 1 / 6, 1 / 6, 1 / 3]))
    p, m = batch["label_p"], torch.tensor([0.0, 1.0, 1 / 3, 2 / 3])
    assert torch.allclose(batch["margin"], m)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    z = _scores(trainer.model, batch) - m
    by_hand = (w * -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z))).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    unweighted = -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z)).mean()
    assert abs(loss.item() - unweighted.item()) > 1e-2

    # Every pair weighing 1: the column is not there, and hard labels leave TRL's own trainer.
    pair, _ = build_params("reward", {"ranking_weight": "pair", "soft_labels": "false"})
    plain, _, _ = build_reward_trainer(
        base=str(tiny_model_dir), rows=_batch_rows(), params=pair, work_dir=tmp_path / "pair"
    )
    assert type(plain) is not SoftRewardTrainer and "pair_weight" not in plain.train_dataset.column_names


def test_the_dpo_loss_is_the_mean_of_weight_times_each_pair_s_whole_term(tmp_path, tiny_model_dir):
    from rlhf.training.soft_dpo import SoftDPOTrainer

    given = {"use_strength": "true", "beta": 0.5, "loss_type": ["sigmoid"], "loss_weights": [2.0]}
    trainer, batch, _ = _dpo_trainer(tmp_path, tiny_model_dir, _batch_rows(), given)
    assert isinstance(trainer, SoftDPOTrainer)
    w, p, s = batch["pair_weight"], batch["label_p"], batch["strength_offset"]
    assert torch.allclose(w, torch.tensor([1.0, 1 / 3, 1 / 3, 1 / 2]))
    model = trainer.model
    loss = trainer.compute_loss(model, dict(batch))
    z = _dpo_logit(model, batch, 0.5) - s
    term = -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z))
    assert loss.item() == pytest.approx(2 * (w * term).mean().item(), rel=1e-4)
    assert abs(loss.item() - 2 * term.mean().item()) > 1e-2
    # The same batch with every weight 1 is the unweighted loss.
    ones = trainer.compute_loss(model, {**batch, "pair_weight": torch.ones(4)})
    assert ones.item() == pytest.approx(2 * term.mean().item(), rel=1e-4)


def test_ranking_weight_changes_what_a_reward_run_trains(rows, tmp_path, tiny_model_dir):
    from rlhf.training.reward import train_reward

    base = {"steps": 2, "batch_size": 4, "eval_fraction": 0.2}
    judged, again, pair = _runs(
        train_reward, rows, tmp_path, tiny_model_dir, "reward", base, [{}, {}, {"ranking_weight": "pair"}]
    )
    assert judged == again
    assert pair[1] != judged[1], "ranking_weight=pair left the reward model's weights as they were"
    assert pair[0]["train_loss"] != judged[0]["train_loss"]
    # One of six judgements (two rankings, four pairs) held out, a ranking never in part.
    held = judged[0]["heldout_comparison_ids"]
    assert held in ([0, 1, 2, 3, 4, 5], [6, 7, 8]) or len(held) == 1
    assert judged[0]["ranking_pairs"] == sum(r["comparison_id"] not in held for r in rows[:9])


def test_ranking_weight_changes_what_a_dpo_run_trains(rows, tmp_path, tiny_model_dir):
    from rlhf.training.dpo import train_dpo

    base = {"steps": 2, "batch_size": 4}
    judged, again, pair = _runs(
        train_dpo, rows, tmp_path, tiny_model_dir, "dpo", base, [{}, {}, {"ranking_weight": "pair"}]
    )
    assert judged == again
    assert pair[1] != judged[1], "ranking_weight=pair left the policy's weights as they were"
    assert pair[0]["train_loss"] != judged[0]["train_loss"]
    assert judged[0]["ranking_pairs"] == pair[0]["ranking_pairs"] == 9
