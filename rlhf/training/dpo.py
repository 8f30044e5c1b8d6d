"""Direct preference optimisation with TRL's ``DPOTrainer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlhf.modeling.tokens import load_tokenizer
from rlhf.training.trl_setup import ProgressCallback, final_loss, peft_config, save_model, trainer_kwargs
from rlhf.training.params import DPOParams


def train_dpo(*, base: str, rows: list[dict], output_dir: Path, params: DPOParams, trl_overrides: dict | None = None,
              work_dir: Path, callbacks: list[ProgressCallback] = ()) -> dict[str, Any]:
    """Train ``base`` on preference rows (conversational prompt/chosen/rejected); save to ``output_dir``."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer = load_tokenizer(base)
    data = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
                              for r in rows])
    args = DPOConfig(**trainer_kwargs(params, work_dir, {
        "beta": params.beta,
        "loss_type": list(params.loss_type),
        "loss_weights": list(params.loss_weights) if params.loss_weights else None,
        "label_smoothing": params.label_smoothing,
        "max_length": params.max_length,
        **(trl_overrides or {}),
    }))
    # The reference model is loaded from the saved base path, so ``base`` must be a saved model.
    trainer = DPOTrainer(model=base, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=list(callbacks), peft_config=peft_config(params))
    result = trainer.train()
    save_model(trainer, output_dir, tokenizer)
    last = {k: v for k, v in (trainer.state.log_history[-2] if len(trainer.state.log_history) > 1 else {}).items()
            if k.startswith("rewards/")}
    return {"train_loss": float(result.training_loss), "final_loss": final_loss(trainer),
            "steps": trainer.state.global_step, "pairs": len(rows), **last}
