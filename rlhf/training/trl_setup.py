"""What the TRL-based trainers share: config arguments from our params, adapters, progress, saving."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlhf.training.base_params import CommonParams

LogFn = Callable[[int, dict[str, Any]], None]
StopFn = Callable[[], bool]


def device_defaults() -> dict[str, Any]:
    """bf16 only where the hardware has it; TRL otherwise defaults to bf16 and gradient
    checkpointing, which on a CPU are slow or unsupported and gain nothing for small models."""
    import torch

    if torch.cuda.is_available():
        return {"use_cpu": False, "bf16": torch.cuda.is_bf16_supported(), "activation_checkpointing": True}
    return {"use_cpu": True, "bf16": False, "activation_checkpointing": False}


def trainer_kwargs(params: CommonParams, work_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Arguments common to every TRL config; ``extra`` are the user's ``trl.`` overrides."""
    kwargs = {
        "output_dir": str(work_dir),
        "max_steps": params.steps,
        "learning_rate": params.learning_rate,
        "per_device_train_batch_size": params.batch_size,
        "gradient_accumulation_steps": params.gradient_accumulation_steps,
        "seed": params.seed,
        "data_seed": params.seed,
        "logging_steps": params.logging_steps,
        "lr_scheduler_type": "linear",
        "save_strategy": "no",  # the run saves once, atomically, when it has finished
        "report_to": "none",
        # Worker processes for data loading fail inside Celery's prefork children.
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        **device_defaults(),
    }
    kwargs.update(extra)
    return kwargs


def peft_config(params: CommonParams, task_type: str = "CAUSAL_LM"):
    """The PEFT config TRL's trainers take (``peft_config=``) for ``params.peft``, or None for a full run."""
    peft = getattr(params, "peft", "none")
    if peft == "lora":
        from peft import LoraConfig

        return LoraConfig(
            r=params.lora_r,
            lora_alpha=params.lora_alpha,
            lora_dropout=params.lora_dropout,
            task_type=task_type,
            target_modules="all-linear",
        )
    if peft == "prompt_tuning":
        from peft import PromptTuningConfig

        # Random init: the text init of PEFT needs the base's own tokenizer path in the config.
        return PromptTuningConfig(task_type=task_type, num_virtual_tokens=params.num_virtual_tokens)
    return None


def save_model(trainer, output_dir: Path, tokenizer) -> None:
    """Save the trained weights and the tokenizer: a full run its model, an adapter run only its adapter.

    An adapter folder (PEFT's format) is named over its base by the worker when it
    registers the checkpoint (:func:`rlhf.modeling.adapters.name_base`). In a multi-process run
    every rank holds the same weights after the last step; only the main one writes them.
    """
    if not trainer.is_world_process_zero():
        return
    model = trainer.model
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.save_pretrained(output_dir)


class ProgressCallback(TrainerCallback):
    """Turns TRL's logs into the run's curves and lets a cancel stop training between steps."""

    def __init__(self, on_log: LogFn | None = None, should_stop: StopFn | None = None):
        self.log_fn = on_log
        self.stop_fn = should_stop
        self.started = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 - TrainerCallback hook
        if self.log_fn and logs and state.is_world_process_zero:
            clean = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            clean["max_steps"] = state.max_steps
            clean["elapsed_s"] = round(time.monotonic() - self.started, 3)
            self.log_fn(state.global_step, clean)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D102
        if self.stop_fn is None:
            return
        stop = self.stop_fn()
        if args.world_size > 1:
            # Every rank must stop after the same step: one that trained on would wait forever
            # for the others in its next gradient all-reduce.
            stop = _any_rank(stop, args.device)
        if stop:
            control.should_training_stop = True


def _any_rank(flag: bool, device) -> bool:
    """True on every rank when it is true on any (one all-reduce of one number per step)."""
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def final_loss(trainer) -> float | None:
    for entry in reversed(trainer.state.log_history):
        if "loss" in entry:
            return float(entry["loss"])
    return None
