"""Direct preference optimisation with TRL's ``DPOTrainer``, with per-pair soft labels.

Rows whose label the votes leave in doubt (``label_p`` < 1, or a ``label_smoothing``),
and with ``use_strength`` rows whose vote says how much better (ODPO's offset, see
:mod:`rlhf.training.strength`), train with :class:`~rlhf.training.soft_dpo.SoftDPOTrainer`;
and rows of a ranking weighted as one judgement (``ranking_weight``, see
:mod:`rlhf.training.ranking_weights`), train with :class:`~rlhf.training.soft_dpo.SoftDPOTrainer`;
when every target is 1, no row is offset and every weight is 1 the plain ``DPOTrainer``
runs, exactly as without any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlhf.modeling.tokens import load_tokenizer
from rlhf.training.params import DPOParams
from rlhf.training.ranking_weights import WEIGHT, needs_weights, ranked_pairs, ranking_weights
from rlhf.training.soft_targets import LABEL_P, needs_soft_term, training_targets
from rlhf.training.strength import OFFSET, any_shift, rated_pairs, strength_shifts
from rlhf.training.trl_setup import ProgressCallback, final_loss, peft_config, save_model, trainer_kwargs


def dpo_config(params: DPOParams, work_dir: Path, trl_overrides: dict | None = None, soft: bool = False):
    """TRL's config for a run; ``soft`` precomputes the reference log-probs the soft term reads."""
    from trl import DPOConfig

    return DPOConfig(
        **trainer_kwargs(
            params,
            work_dir,
            {
                "beta": params.beta,
                "loss_type": list(params.loss_type),
                "loss_weights": list(params.loss_weights) if params.loss_weights else None,
                "max_length": params.max_length,
                **({"precompute_ref_log_probs": True} if soft else {}),
                **(trl_overrides or {}),
            },
        )
    )


def build_dpo_trainer(
    *,
    base: str,
    rows: list[dict],
    params: DPOParams,
    work_dir: Path,
    trl_overrides: dict | None = None,
    callbacks: Sequence[ProgressCallback] = (),
):
    """The trainer a run uses (not yet trained): the soft one when some pair's target is below 1, is offset
    or is weighted."""
    from datasets import Dataset
    from trl import DPOTrainer

    from rlhf.training.soft_dpo import SoftDPOTrainer  # heavy: loads trl, as the imports above

    tokenizer = load_tokenizer(base)
    targets = training_targets(rows, soft_labels=params.soft_labels, label_smoothing=params.label_smoothing)
    offsets = strength_shifts(rows, params.strength_offsets) if params.use_strength else []
    weights = ranking_weights(rows, mode=params.ranking_weight, algorithm="dpo")
    soft, offset, weighted = needs_soft_term(targets), any_shift(offsets), needs_weights(weights)
    data = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    if soft:
        data = [{**d, LABEL_P: t} for d, t in zip(data, targets)]
    if offset:
        data = [{**d, OFFSET: s} for d, s in zip(data, offsets)]
    if weighted:
        data = [{**d, WEIGHT: w} for d, w in zip(data, weights)]
    extended = soft or offset or weighted
    args = dpo_config(params, work_dir, trl_overrides, soft=extended)
    # The reference model is loaded from the saved base path, so ``base`` must be a saved model.
    cls = SoftDPOTrainer if extended else DPOTrainer
    trainer = cls(
        model=base,
        args=args,
        train_dataset=Dataset.from_list(data),
        processing_class=tokenizer,
        callbacks=list(callbacks),
        peft_config=peft_config(params),
    )
    return trainer, tokenizer, targets


def train_dpo(
    *,
    base: str,
    rows: list[dict],
    output_dir: Path,
    params: DPOParams,
    trl_overrides: dict | None = None,
    work_dir: Path,
    callbacks: Sequence[ProgressCallback] = (),
) -> dict[str, Any]:
    """Train ``base`` on preference rows (conversational prompt/chosen/rejected); save to ``output_dir``."""
    trainer, tokenizer, targets = build_dpo_trainer(
        base=base, rows=rows, params=params, work_dir=work_dir, trl_overrides=trl_overrides, callbacks=callbacks
    )
    result = trainer.train()
    save_model(trainer, output_dir, tokenizer)
    last = {
        k: v
        for k, v in (trainer.state.log_history[-2] if len(trainer.state.log_history) > 1 else {}).items()
        if k.startswith("rewards/")
    }
    return {
        "train_loss": float(result.training_loss),
        "final_loss": final_loss(trainer),
        "steps": trainer.state.global_step,
        "pairs": len(rows),
        "mean_label_p": round(sum(targets) / len(targets), 4) if targets else None,
        **({"strength_pairs": rated_pairs(rows)} if params.use_strength else {}),
        **({"ranking_pairs": ranked_pairs(rows)} if ranked_pairs(rows) else {}),
        **last,
    }
