"""A vote's strength in the loss: Llama 2's margin for the reward model, ODPO's offset for DPO.

Each loss is computed by hand on a fixed batch of the tiny model and compared with what the
trainer computes; rows without a strength are shifted by 0.
"""

from __future__ import annotations

import hashlib
import inspect

import pytest
import torch
import torch.nn.functional as F

from rlhf.errors import InvalidInput
from rlhf.training.params import build_params, validate_params
from rlhf.training.strength import DEFAULT_MARGINS, DEFAULT_OFFSETS, strength_shifts

pytestmark = pytest.mark.slow

# The first row has no strength: TRL's reward collator decides from the first example whether
# the batch has margins, so it must get one (0) too.
STRENGTHS = [None, 1, 3, 2]


def _rows(strengths, ps=None):
    ps = ps or [1.0] * len(strengths)
    rows = []
    for i, (s, p) in enumerate(zip(strengths, ps)):
        row = {
            "prompt": [{"role": "user", "content": f"Say something nice {i}"}],
            "chosen": [{"role": "assistant", "content": f"Yes please, thank you {i}"}],
            "rejected": [{"role": "assistant", "content": f"No {i}"}],
            "label_p": p,
            "margin": 7.5,  # an export's margin key: never read for training
        }
        if s is not None:
            row["strength"] = s
        rows.append(row)
    return rows


def _completion_logps(model, batch):
    """Summed log-probabilities of the completion tokens, computed here without TRL."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    logp = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logp * batch["completion_mask"][:, 1:]).sum(1)


def _scores(model, batch):
    with torch.no_grad():
        scores = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    n = scores.numel() // 2
    return scores[:n] - scores[n:]


# --- parameters ---------------------------------------------------------------------------------


def test_strength_is_off_by_default_and_levels_default_to_the_documented_scales():
    reward, _ = build_params("reward", {})
    dpo, _ = build_params("dpo", {})
    assert reward.use_strength is False and dpo.use_strength is False
    assert reward.strength_margins == pytest.approx([1 / 3, 2 / 3, 1.0]) == DEFAULT_MARGINS
    assert dpo.strength_offsets == pytest.approx([1 / 3, 2 / 3, 1.0]) == DEFAULT_OFFSETS
    given, _ = build_params("reward", {"use_strength": "true", "strength_margins": "0, 1, 3"})
    assert given.use_strength is True and given.strength_margins == [0.0, 1.0, 3.0]
    given, _ = build_params("dpo", {"use_strength": "true", "strength_offsets": "[0.5, 1, 2]"})
    assert given.strength_offsets == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    "algorithm,params,match",
    [
        ("reward", {"use_strength": "true", "strength_margins": "[0.1, -0.2, 1]"}, "must not be negative"),
        ("dpo", {"use_strength": "true", "strength_offsets": "[0.1, 0.2]"}, "takes 3 numbers"),
        ("dpo", {"use_strength": "true", "strength_offsets": "[0.1, 0.2, 0.3, 0.4]"}, "takes 3 numbers"),
        ("reward", {"use_strength": "true", "strength_margins": "[1, 0.5, 2]"}, "must not fall"),
        ("reward", {"use_strength": "true", "strength_margins": "a,b,c"}, "cannot read 'a'"),
        ("dpo", {"use_strength": "true", "strength_offsets": "[0.1, NaN, 1]"}, "takes numbers"),
        ("reward", {"strength_margins": "[0.1, 0.2, 0.3]"}, "acts only with use_strength=true"),
        ("dpo", {"use_strength": "false", "strength_offsets": "[0.1, 0.2, 0.3]"}, "acts only with use_strength"),
        ("dpo", {"use_strength": "true", "loss_type": "ipo"}, "no 'sigmoid' term"),
        ("dpo", {"use_strength": "yes"}, "use_strength: cannot read 'yes'"),
        ("sft", {"use_strength": "true"}, "trains the reward model and DPO only"),
        ("grpo", {"use_strength": "true"}, "trains the reward model and DPO only"),
        ("dpo", {"use_strength": "true", "strength_margins": "[0, 1, 2]"}, "dpo's levels are strength_offsets"),
        ("reward", {"use_strength": "true", "strength_offsets": "[0, 1, 2]"}, "levels are strength_margins"),
    ],
)
def test_nonsense_strength_parameters_are_refused(algorithm, params, match):
    with pytest.raises(InvalidInput, match=match):
        validate_params(algorithm, params)


def test_each_row_is_shifted_by_its_level_and_rows_without_strength_by_zero():
    levels = [0.25, 0.5, 2.0]
    rows = [{}, {"strength": None}, {"strength": 1}, {"strength": 2}, {"strength": 3}, {"strength": 3.0}]
    assert strength_shifts(rows, levels) == [0.0, 0.0, 0.25, 0.5, 2.0, 2.0]
    for bad in (0, 4, "2", True, 1.5):
        with pytest.raises(InvalidInput, match="strength must be 1, 2 or 3"):
            strength_shifts([{"strength": bad}], levels)


# --- reward model: TRL's margin --------------------------------------------------------------


def test_reward_loss_with_strength_is_trl_s_margin_loss_with_the_level_s_margin(tmp_path, tiny_model_dir):
    from trl import RewardTrainer

    from rlhf.training.reward import build_reward_trainer

    margins = [0.5, 1.0, 2.0]
    params, _ = build_params("reward", {"use_strength": "true", "strength_margins": margins})
    trainer, _, _ = build_reward_trainer(
        base=str(tiny_model_dir), rows=_rows(STRENGTHS), params=params, work_dir=tmp_path / "on"
    )
    assert type(trainer) is RewardTrainer  # hard labels: TRL's own trainer reads the margin column
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    m = torch.tensor([0.0, 0.5, 2.0, 1.0])
    assert torch.equal(batch["margin"], m)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    x = _scores(trainer.model, batch)
    assert x.abs().min() > 1e-4
    assert loss.item() == pytest.approx((-F.logsigmoid(x - m)).mean().item(), rel=1e-5)
    assert abs(loss.item() - (-F.logsigmoid(x)).mean().item()) > 1e-3

    off, _ = build_params("reward", {})
    trainer, _, _ = build_reward_trainer(
        base=str(tiny_model_dir), rows=_rows(STRENGTHS), params=off, work_dir=tmp_path / "off"
    )
    assert "margin" not in trainer.train_dataset.column_names  # as before: the export's margin is not read


def test_soft_reward_loss_with_strength_keeps_the_margin_inside_the_logit(tmp_path, tiny_model_dir):
    from rlhf.training.reward import build_reward_trainer
    from rlhf.training.soft_reward import SoftRewardTrainer

    params, _ = build_params("reward", {"use_strength": "true"})
    trainer, _, targets = build_reward_trainer(
        base=str(tiny_model_dir), rows=_rows(STRENGTHS, [0.6, 0.8, 1.0, 0.7]), params=params, work_dir=tmp_path
    )
    assert isinstance(trainer, SoftRewardTrainer) and targets == [0.6, 0.8, 1.0, 0.7]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    p, m = batch["label_p"], torch.tensor([0.0, 1 / 3, 1.0, 2 / 3])
    assert torch.allclose(batch["margin"], m)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    z = _scores(trainer.model, batch) - m
    # −(p log σ(z) + (1 − p) log σ(−z)), z = r_chosen − r_rejected − margin
    by_hand = -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z)).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)


# --- DPO: ODPO's offset ----------------------------------------------------------------------


def _dpo_trainer(tmp_path, tiny_model_dir, rows, given):
    from rlhf.training.dpo import build_dpo_trainer

    params, _ = build_params("dpo", given)
    trainer, _, targets = build_dpo_trainer(base=str(tiny_model_dir), rows=rows, params=params, work_dir=tmp_path)
    torch.manual_seed(0)
    with torch.no_grad():  # move the policy off its reference, so that the log-ratios are not 0
        for w in trainer.model.parameters():
            w.add_(0.02 * torch.randn_like(w))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    return trainer, batch, targets


def _dpo_logit(model, batch, beta):
    chosen, rejected = _completion_logps(model, batch).chunk(2)
    return beta * ((chosen - batch["ref_chosen_logps"]) - (rejected - batch["ref_rejected_logps"]))


def test_dpo_loss_with_strength_is_odpo_s_offset_loss(tmp_path, tiny_model_dir):
    from rlhf.training.soft_dpo import SoftDPOTrainer

    given = {"use_strength": "true", "strength_offsets": [0.5, 1.0, 2.0], "beta": 0.5}
    # Twice the sigmoid term's weight: the offset's term is weighed as TRL weighs the term it shifts.
    given |= {"loss_type": ["sigmoid"], "loss_weights": [2.0], "soft_labels": "false"}
    trainer, batch, _ = _dpo_trainer(tmp_path, tiny_model_dir, _rows(STRENGTHS), given)
    assert isinstance(trainer, SoftDPOTrainer) and "label_p" not in batch
    offsets = torch.tensor([0.0, 0.5, 2.0, 1.0])
    assert torch.equal(batch["strength_offset"], offsets)
    model = trainer.model
    loss = trainer.compute_loss(model, dict(batch))
    x = _dpo_logit(model, batch, 0.5)
    assert x.abs().min() > 1e-3
    assert loss.item() == pytest.approx(2 * (-F.logsigmoid(x - offsets)).mean().item(), rel=1e-4)
    # The same batch with every offset 0 is TRL's own loss, and a different number.
    zero = trainer.compute_loss(model, {**batch, "strength_offset": torch.zeros(4)})
    assert zero.item() == pytest.approx(2 * (-F.logsigmoid(x)).mean().item(), rel=1e-4)
    assert abs(loss.item() - zero.item()) > 1e-2

    # d loss / dθ = 2 · mean over pairs of (σ(x − Δ) − 1) · dx/dθ
    weights = [w for w in model.parameters() if w.requires_grad]
    got = torch.cat([g.flatten() for g in torch.autograd.grad(loss, weights)])
    dx = [torch.cat([g.flatten() for g in torch.autograd.grad(x[i], weights, retain_graph=True)]) for i in range(4)]
    sig = torch.sigmoid(x - offsets).detach()
    want = sum(2 * (sig[i] - 1) / 4 * dx[i] for i in range(4))
    assert torch.allclose(got, want, rtol=1e-3, atol=1e-6)


def test_soft_dpo_loss_with_strength_is_the_cross_entropy_with_the_offset_in_the_logit(tmp_path, tiny_model_dir):
    given = {"use_strength": "true", "beta": 0.5, "loss_type": ["sigmoid"], "loss_weights": [1.0]}
    rows = _rows(STRENGTHS, [0.7, 0.9, 0.8, 1.0])
    trainer, batch, targets = _dpo_trainer(tmp_path, tiny_model_dir, rows, given)
    assert targets == [0.7, 0.9, 0.8, 1.0]
    p, offsets = batch["label_p"], batch["strength_offset"]
    assert torch.allclose(offsets, torch.tensor([0.0, 1 / 3, 1.0, 2 / 3]))
    model = trainer.model
    loss = trainer.compute_loss(model, dict(batch))
    z = _dpo_logit(model, batch, 0.5) - offsets
    by_hand = -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z)).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-4)

    weights = [w for w in model.parameters() if w.requires_grad]
    got = torch.cat([g.flatten() for g in torch.autograd.grad(loss, weights)])
    dz = [torch.cat([g.flatten() for g in torch.autograd.grad(z[i], weights, retain_graph=True)]) for i in range(4)]
    sig = torch.sigmoid(z).detach()
    assert torch.allclose(got, sum((sig[i] - p[i]) / 4 * dz[i] for i in range(4)), rtol=1e-3, atol=1e-6)


def test_dpo_without_strength_or_without_rated_rows_trains_as_before(tmp_path, tiny_model_dir):
    from trl import DPOTrainer

    from rlhf.training.dpo import build_dpo_trainer

    for i, given in enumerate(({"soft_labels": "false"}, {"soft_labels": "false", "use_strength": "true"})):
        rows = _rows(STRENGTHS if i == 0 else [None] * 4)
        params, _ = build_params("dpo", given)
        trainer, _, _ = build_dpo_trainer(
            base=str(tiny_model_dir), rows=rows, params=params, work_dir=tmp_path / str(i)
        )
        assert type(trainer) is DPOTrainer and not trainer.args.precompute_ref_log_probs
        assert "strength_offset" not in trainer.train_dataset.column_names


# --- the TRL code relied on ---------------------------------------------------------------------

# As it reads in the pinned TRL. When TRL changes one, check rlhf/training/strength.py, reward.py
# and soft_dpo.py against it, then update the hash.
PINNED_TRL = {
    # −log σ(r_c − r_r − margin) when the batch has "margin"
    "trl.trainer.reward_trainer.RewardTrainer.compute_loss": "ec4fad890ecfab14",
    # "margin" read for every example only if the first example has one
    "trl.trainer.reward_trainer.DataCollatorForPreference.torch_call": "ffa8bd0163c677fb",
    # "margin" is a signature column, so remove_unused_columns keeps it
    "trl.trainer.reward_trainer.RewardTrainer._set_signature_columns_if_needed": "1e6682d036a6982d",
    # tokenising keeps the dataset's other columns ("margin" among them)
    "trl.trainer.reward_trainer.RewardTrainer._prepare_dataset": "d753a196b9cfefe9",
    # the sigmoid term −log σ(β·Δ) the offset's correction turns into −log σ(β·Δ − offset)
    "trl.trainer.dpo_trainer.DPOTrainer._compute_loss": "5e58a1699e0d76cd",
    # tokenising keeps "strength_offset"; the collator SoftDPOTrainer extends, its signature columns
    "trl.trainer.dpo_trainer.DPOTrainer._prepare_dataset": "35e349e8e8266df4",
    "trl.trainer.dpo_trainer.DataCollatorForPreference.torch_call": "0b8bb4c294bf8420",
    "trl.trainer.dpo_trainer.DPOTrainer._set_signature_columns_if_needed": "71225a628baed4cb",
    "trl.trainer.dpo_trainer.DPOTrainer.compute_ref_log_probs": "90611af9cbadb8ec",
}


def _source_hash(dotted: str) -> str:
    import importlib

    module, cls, method = dotted.rsplit(".", 2)
    fn = getattr(getattr(importlib.import_module(module), cls), method)
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


@pytest.mark.parametrize("dotted", sorted(PINNED_TRL))
def test_the_trl_code_strength_relies_on_is_the_pinned_one(dotted):
    assert _source_hash(dotted) == PINNED_TRL[dotted], (
        f"{dotted} changed in this TRL: check rlhf/training/strength.py, reward.py and soft_dpo.py "
        "against it, then update PINNED_TRL"
    )
