"""Supervised fine-tuning on demonstrations with TRL's ``SFTTrainer``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlhf.errors import InvalidInput
from rlhf.modeling.tokens import load_tokenizer
from rlhf.training.params import SFTParams
from rlhf.training.trl_setup import ProgressCallback, final_loss, peft_config, save_model, trainer_kwargs


def demonstrations_to_examples(demos: list[dict]) -> list[dict]:
    """``{"messages": [..., assistant]}`` → prompt/completion, so loss falls on the answer only."""
    examples = []
    for i, d in enumerate(demos, start=1):
        msgs = d.get("messages")
        if not msgs or msgs[-1].get("role") != "assistant" or len(msgs) < 2:
            raise InvalidInput(f"demonstration {i}: needs 'messages' ending with an assistant turn")
        examples.append({"prompt": msgs[:-1], "completion": [msgs[-1]]})
    return examples


def sft_config(params: SFTParams, work_dir: Path, trl_overrides: dict | None = None):
    from trl import SFTConfig

    return SFTConfig(**trainer_kwargs(params, work_dir, {"max_length": params.max_length, **(trl_overrides or {})}))


def train_sft(
    *,
    base: str,
    examples: list[dict],
    output_dir: Path,
    params: SFTParams,
    trl_overrides: dict | None = None,
    work_dir: Path,
    callbacks: Sequence[ProgressCallback] = (),
) -> dict[str, Any]:
    """Fine-tune ``base`` on prompt/completion examples (conversational)."""
    from datasets import Dataset
    from trl import SFTTrainer

    tokenizer = load_tokenizer(base)
    args = sft_config(params, work_dir, trl_overrides)
    trainer = SFTTrainer(
        model=base,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=list(callbacks),
        peft_config=peft_config(params),
    )
    result = trainer.train()
    save_model(trainer, output_dir, tokenizer)
    return {
        "train_loss": float(result.training_loss),
        "final_loss": final_loss(trainer),
        "steps": trainer.state.global_step,
        "examples": len(examples),
    }
