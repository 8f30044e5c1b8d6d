"""Reward model training with TRL's ``RewardTrainer``; accuracy measured on held-out votes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from rlhf.modeling.tokens import load_tokenizer
from rlhf.training.trl_setup import ProgressCallback, final_loss, peft_config, save_model, trainer_kwargs
from rlhf.training.params import RewardParams
from rlhf.training.scoring import pairwise_accuracy


def split_rows(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out whole comparisons (not single votes), so a pair never sits on both sides."""
    comparisons = sorted({r.get("comparison_id", i) for i, r in enumerate(rows)})
    random.Random(seed).shuffle(comparisons)
    n_eval = int(round(len(comparisons) * eval_fraction)) if len(comparisons) > 1 else 0
    held = set(comparisons[:n_eval])
    train = [r for i, r in enumerate(rows) if r.get("comparison_id", i) not in held]
    heldout = [r for i, r in enumerate(rows) if r.get("comparison_id", i) in held]
    return train, heldout


def train_reward(*, base: str, rows: list[dict], output_dir: Path, params: RewardParams,
                 trl_overrides: dict | None = None, work_dir: Path,
                 callbacks: list[ProgressCallback] = ()) -> dict[str, Any]:
    """A sequence-classification reward model initialised from ``base``; returns held-out accuracy."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    train_rows, heldout = split_rows(rows, params.eval_fraction, params.seed)
    tokenizer = load_tokenizer(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(**trainer_kwargs(params, work_dir, {"max_length": params.max_length,
                                                            **(trl_overrides or {})}))
    data = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
                              for r in train_rows])
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                            callbacks=list(callbacks), peft_config=peft_config(params, "SEQ_CLS"))
    result = trainer.train()
    save_model(trainer, output_dir, tokenizer)
    model = trainer.model.merge_and_unload() if hasattr(trainer.model, "merge_and_unload") else trainer.model
    model.eval()
    return {"train_loss": float(result.training_loss), "final_loss": final_loss(trainer),
            "steps": trainer.state.global_step, "train_pairs": len(train_rows), "heldout_pairs": len(heldout),
            "heldout_accuracy": pairwise_accuracy(model, tokenizer, heldout),
            "train_accuracy": pairwise_accuracy(model, tokenizer, train_rows[:256])}
