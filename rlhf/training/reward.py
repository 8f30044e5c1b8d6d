"""Reward model training with TRL's ``RewardTrainer``; accuracy measured on held-out votes.

With ``use_strength`` every row gets TRL's ``margin`` column (Llama 2's margin per strength,
0 for a row without one: TRL's collator reads margins only if the first example has one);
see :mod:`rlhf.training.strength`. A ranking's pairs are weighted (``ranking_weight``) and held
out together: see :mod:`rlhf.training.ranking_weights`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlhf.modeling.tokens import load_tokenizer
from rlhf.training.params import RewardParams
from rlhf.training.ranking_weights import WEIGHT, needs_weights, ranked_pairs, ranking_weights, split_key
from rlhf.training.scoring import pairwise_accuracy
from rlhf.training.soft_targets import LABEL_P, needs_soft_term, training_targets
from rlhf.training.strength import rated_pairs, strength_shifts
from rlhf.training.trl_setup import ProgressCallback, final_loss, peft_config, save_model, trainer_kwargs


def split_rows(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out whole judgements: a comparison (never single votes of it) or a whole ranking (never
    single pairs of it), so no pair or answer order sits on both sides. ``eval_fraction`` is the
    share of those judgements held out."""
    keys = [split_key(r, i) for i, r in enumerate(rows)]
    groups = sorted(set(keys))
    random.Random(seed).shuffle(groups)
    n_eval = int(round(len(groups) * eval_fraction)) if len(groups) > 1 else 0
    held = set(groups[:n_eval])
    train = [r for r, k in zip(rows, keys) if k not in held]
    heldout = [r for r, k in zip(rows, keys) if k in held]
    return train, heldout


def reward_config(params: RewardParams, work_dir: Path, trl_overrides: dict | None = None):
    from trl import RewardConfig

    return RewardConfig(**trainer_kwargs(params, work_dir, {"max_length": params.max_length, **(trl_overrides or {})}))


def build_reward_trainer(
    *,
    base: str,
    rows: list[dict],
    params: RewardParams,
    work_dir: Path,
    trl_overrides: dict | None = None,
    callbacks: Sequence[ProgressCallback] = (),
):
    """The trainer for the training rows (not yet trained): the soft one when some pair's target is below 1
    or some pair's ranking weight is not 1."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, set_seed
    from trl import RewardTrainer

    from rlhf.training.soft_reward import SoftRewardTrainer  # heavy: loads trl, as the imports above

    targets = training_targets(rows, soft_labels=params.soft_labels, label_smoothing=params.label_smoothing)
    tokenizer = load_tokenizer(base)
    # The scoring head is new, initialised at random: seeded here, as the trainer seeds only later,
    # so that the same rows and seed train the same model in any process, however many came before.
    set_seed(params.seed)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = reward_config(params, work_dir, trl_overrides)
    data = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    if params.use_strength:
        data = [{**d, "margin": m} for d, m in zip(data, strength_shifts(rows, params.strength_margins))]
    soft = needs_soft_term(targets)
    if soft:  # with every target at 1 TRL's own trainer runs, as it always has
        data = [{**d, LABEL_P: t} for d, t in zip(data, targets)]
    weights = ranking_weights(rows, mode=params.ranking_weight, algorithm="reward")
    weighted = needs_weights(weights)
    if weighted:  # likewise with every weight 1 (no ranking, or ranking_weight=pair)
        data = [{**d, WEIGHT: w} for d, w in zip(data, weights)]
    trainer = (SoftRewardTrainer if soft or weighted else RewardTrainer)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(data),
        processing_class=tokenizer,
        callbacks=list(callbacks),
        peft_config=peft_config(params, "SEQ_CLS"),
    )
    return trainer, tokenizer, targets


def train_reward(
    *,
    base: str,
    rows: list[dict],
    output_dir: Path,
    params: RewardParams,
    trl_overrides: dict | None = None,
    work_dir: Path,
    callbacks: Sequence[ProgressCallback] = (),
) -> dict[str, Any]:
    """A sequence-classification reward model initialised from ``base``; returns held-out accuracy.

    The result names the comparisons it held out (``heldout_comparison_ids``): machine
    labelling calibrates on exactly those human votes, which the model never saw.
    """
    train_rows, heldout = split_rows(rows, params.eval_fraction, params.seed)
    trainer, tokenizer, targets = build_reward_trainer(
        base=base, rows=train_rows, params=params, work_dir=work_dir, trl_overrides=trl_overrides, callbacks=callbacks
    )
    result = trainer.train()
    save_model(trainer, output_dir, tokenizer)
    if not trainer.is_world_process_zero():
        return {"steps": trainer.state.global_step}  # the worker reads the main rank's result only
    model = trainer.model.merge_and_unload() if hasattr(trainer.model, "merge_and_unload") else trainer.model
    model.eval()
    margins = [e["margin"] for e in trainer.state.log_history if "margin" in e]
    return {
        "train_loss": float(result.training_loss),
        "final_loss": final_loss(trainer),
        "steps": trainer.state.global_step,
        "train_pairs": len(train_rows),
        "heldout_pairs": len(heldout),
        "heldout_comparison_ids": sorted({r["comparison_id"] for r in heldout if "comparison_id" in r}),
        "heldout_accuracy": pairwise_accuracy(model, tokenizer, heldout),
        "train_accuracy": pairwise_accuracy(model, tokenizer, train_rows[:256]),
        "final_margin": margins[-1] if margins else None,
        "mean_label_p": round(sum(targets) / len(targets), 4) if targets else None,
        **({"strength_pairs": rated_pairs(train_rows)} if params.use_strength else {}),
        **({"ranking_pairs": ranked_pairs(train_rows)} if ranked_pairs(rows) else {}),
    }
