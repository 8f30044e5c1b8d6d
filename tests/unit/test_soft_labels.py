"""Per-pair soft labels: the loss TRL's trainers compute, extended at their smallest seam."""

from __future__ import annotations

import hashlib
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from rlhf.errors import ConfigError
from rlhf.training.params import build_params
from rlhf.training.soft_targets import soft_preference_loss, training_targets

pytestmark = pytest.mark.slow


def _rows(ps):
    return [
        {
            "prompt": [{"role": "user", "content": f"Say something nice {i}"}],
            "chosen": [{"role": "assistant", "content": f"Yes please, thank you {i}"}],
            "rejected": [{"role": "assistant", "content": f"No {i}"}],
            "label_p": p,
        }
        for i, p in enumerate(ps)
    ]


def _completion_logps(model, batch):
    """Summed log-probabilities of the completion tokens, computed here without TRL."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    logp = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logp * batch["completion_mask"][:, 1:]).sum(1)


def test_targets_combine_the_votes_p_with_label_smoothing_and_switch_off():
    rows = [{"label_p": 0.8}, {"label_p": 1.0}, {}]
    assert training_targets(rows, soft_labels=True, label_smoothing=0.0) == [0.8, 1.0, 1.0]
    # p(1-e) + (1-p)e
    assert training_targets(rows, soft_labels=True, label_smoothing=0.1) == pytest.approx([0.74, 0.9, 0.9])
    assert training_targets(rows, soft_labels=False, label_smoothing=0.0) == [1.0, 1.0, 1.0]
    assert training_targets(rows, soft_labels=False, label_smoothing=0.2) == pytest.approx([0.8, 0.8, 0.8])


def test_soft_loss_gradient_with_respect_to_the_logit_is_sigmoid_minus_p():
    x = torch.tensor([0.7, -1.3], requires_grad=True)
    p = torch.tensor([0.8, 0.6])
    loss = soft_preference_loss(x, p).sum()
    # By hand: -(p log s(x) + (1-p) log s(-x)).
    by_hand = sum(
        -(pi * math.log(1 / (1 + math.exp(-xi))) + (1 - pi) * math.log(1 / (1 + math.exp(xi))))
        for xi, pi in zip([0.7, -1.3], [0.8, 0.6])
    )
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.tolist() == pytest.approx((torch.sigmoid(x) - p).tolist(), rel=1e-6)
    (hard,) = torch.autograd.grad(soft_preference_loss(x, torch.ones(2)).sum(), x)
    assert hard.tolist() == pytest.approx((torch.sigmoid(x) - 1).tolist(), rel=1e-6)


def test_soft_dpo_loss_and_gradient_on_a_two_row_batch(tmp_path, tiny_model_dir):
    from rlhf.training.dpo import build_dpo_trainer
    from rlhf.training.soft_dpo import SoftDPOTrainer

    params, _ = build_params("dpo", {"loss_type": ["sigmoid"], "loss_weights": [1.0], "beta": 0.5})
    trainer, _, targets = build_dpo_trainer(
        base=str(tiny_model_dir), rows=_rows([0.7, 0.9]), params=params, work_dir=tmp_path
    )
    assert isinstance(trainer, SoftDPOTrainer) and targets == [0.7, 0.9]
    model = trainer.model
    torch.manual_seed(0)
    with torch.no_grad():  # move the policy off its reference, so that Δ ≠ 0
        for w in model.parameters():
            w.add_(0.02 * torch.randn_like(w))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    p = batch["label_p"]
    loss = trainer.compute_loss(model, dict(batch))

    chosen, rejected = _completion_logps(model, batch).chunk(2)
    x = 0.5 * ((chosen - batch["ref_chosen_logps"]) - (rejected - batch["ref_rejected_logps"]))
    assert x.abs().min() > 1e-3
    by_hand = (-F.logsigmoid(x) + (1 - p) * x).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-4)

    # Through the chain rule: d loss / dθ = mean over pairs of (σ(x) - p) · dx/dθ, not (σ(x) - 1) · dx/dθ.
    weights = [w for w in model.parameters() if w.requires_grad]
    got = torch.cat([g.flatten() for g in torch.autograd.grad(loss, weights)])
    dx = [torch.cat([g.flatten() for g in torch.autograd.grad(x[i], weights, retain_graph=True)]) for i in range(2)]
    sig = torch.sigmoid(x).detach()
    soft = sum((sig[i] - p[i]) / 2 * dx[i] for i in range(2))
    hard = sum((sig[i] - 1) / 2 * dx[i] for i in range(2))
    assert torch.allclose(got, soft, rtol=1e-3, atol=1e-6)
    assert not torch.allclose(got, hard, rtol=1e-2, atol=1e-5)


def test_soft_reward_loss_on_a_two_row_batch(tmp_path, tiny_model_dir):
    from rlhf.training.reward import build_reward_trainer
    from rlhf.training.soft_reward import SoftRewardTrainer

    params, _ = build_params("reward", {})
    trainer, _, _ = build_reward_trainer(
        base=str(tiny_model_dir), rows=_rows([0.6, 0.8]), params=params, work_dir=tmp_path
    )
    assert isinstance(trainer, SoftRewardTrainer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    p = batch["label_p"]
    loss = trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        scores = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    x = scores[:2] - scores[2:]
    assert x.abs().min() > 1e-4
    assert loss.item() == pytest.approx((-F.logsigmoid(x) + (1 - p) * x).mean().item(), rel=1e-4)


def test_hard_labels_and_certain_rows_train_with_trl_s_own_trainers(tmp_path, tiny_model_dir):
    from trl import DPOTrainer, RewardTrainer

    from rlhf.training.dpo import build_dpo_trainer
    from rlhf.training.reward import build_reward_trainer

    hard, _ = build_params("dpo", {"soft_labels": "false"})
    trainer, _, targets = build_dpo_trainer(
        base=str(tiny_model_dir), rows=_rows([0.6, 0.7]), params=hard, work_dir=tmp_path / "a"
    )
    assert type(trainer) is DPOTrainer and targets == [1.0, 1.0] and not trainer.args.precompute_ref_log_probs
    certain, _ = build_params("reward", {})
    trainer, _, _ = build_reward_trainer(
        base=str(tiny_model_dir), rows=_rows([1.0, 1.0]), params=certain, work_dir=tmp_path / "b"
    )
    assert type(trainer) is RewardTrainer


def test_soft_labels_refuse_trl_losses_they_cannot_soften(tmp_path, tiny_model_dir):
    from rlhf.training.dpo import build_dpo_trainer

    params, trl = build_params("dpo", {"loss_type": ["ipo"], "loss_weights": [1.0]})
    with pytest.raises(ConfigError, match="soft_labels=false"):
        build_dpo_trainer(base=str(tiny_model_dir), rows=_rows([0.6, 0.7]), params=params, work_dir=tmp_path)


# The TRL code the two subclasses rely on, as it reads in the pinned TRL. When TRL changes it,
# read rlhf/training/soft_dpo.py and soft_reward.py against the new code, then update the hash.
PINNED_TRL = {
    "trl.trainer.dpo_trainer.DPOTrainer._compute_loss": "5e58a1699e0d76cd",
    "trl.trainer.dpo_trainer.DPOTrainer.compute_ref_log_probs": "90611af9cbadb8ec",
    "trl.trainer.dpo_trainer.DPOTrainer._set_signature_columns_if_needed": "71225a628baed4cb",
    "trl.trainer.dpo_trainer.DataCollatorForPreference.torch_call": "0b8bb4c294bf8420",
    "trl.trainer.reward_trainer.RewardTrainer.compute_loss": "ec4fad890ecfab14",
    "trl.trainer.reward_trainer.RewardTrainer._set_signature_columns_if_needed": "1e6682d036a6982d",
    "trl.trainer.reward_trainer.DataCollatorForPreference.torch_call": "ffa8bd0163c677fb",
}


def _source_hash(dotted: str) -> str:
    import importlib

    module, cls, method = dotted.rsplit(".", 2)
    fn = getattr(getattr(importlib.import_module(module), cls), method)
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


@pytest.mark.parametrize("dotted", sorted(PINNED_TRL))
def test_the_trl_code_the_soft_trainers_extend_is_the_pinned_one(dotted):
    assert _source_hash(dotted) == PINNED_TRL[dotted], (
        f"{dotted} changed in this TRL: check rlhf/training/soft_dpo.py / soft_reward.py against it, "
        "then update PINNED_TRL"
    )
