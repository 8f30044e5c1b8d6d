"""The fields every algorithm's parameters share, and the helper that declares a field.

Kept apart from the registry (:mod:`rlhf.training.params`) so that each algorithm's
config module (PPO's in :mod:`rlhf.training.ppo.config`) can extend these classes while
the registry imports every config: imports then go one way. Nothing here imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def param(default: Any, help: str) -> Any:
    """A dataclass field with its help text (shown by ``--help``, the console and ``describe``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class CommonParams:
    """What every algorithm reads, under the same name: one ``--set`` works for all of them."""

    steps: int = param(50, "optimizer steps to train for")
    learning_rate: float = param(5e-4, "peak learning rate (linear decay)")
    batch_size: int = param(8, "examples per device per step")
    gradient_accumulation_steps: int = param(1, "micro-batches accumulated into one optimizer step")
    seed: int = param(0, "random seed for data order and initialisation")
    logging_steps: int = param(1, "log losses every N steps (these become the run's curves)")
    use_lora: bool = param(False, "train LoRA adapters instead of all weights (merged on save)")
    lora_r: int = param(16, "LoRA rank")
    lora_alpha: int = param(32, "LoRA scaling alpha")
    lora_dropout: float = param(0.05, "LoRA dropout")
    num_processes: int = param(1, "processes for `accelerate launch` (one per GPU); 1 runs the trainer directly")
    accelerate_config: str = param("", "accelerate config file for multi-GPU runs (see deploy/accelerate/)")
    eval_samples: int = param(4, "samples per held-out prompt for the evaluation after the run (0 = skip)")


@dataclass
class OnlineParams(CommonParams):
    """Online RL against a reward model (RLOO, GRPO, PPO): sampling and the pull to the reference."""

    max_prompt_length: int = param(256, "prompt tokens kept (from the end); TRL does not truncate prompts")
    max_completion_length: int = param(48, "longest sampled answer, in tokens")
    temperature: float = param(1.0, "sampling temperature of the rollouts")
    beta: float = param(0.05, "KL penalty towards the reference (the base policy)")
    prompt_tag: str = param("", "train only on prompts with this tag (empty = all prompts)")
