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

        def fresh_copy() -> Any:  # each instance gets its own, never the shared default
            return json.loads(json.dumps(default))

        return field(default_factory=fresh_copy, metadata={"help": help})
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
    peft: str = param(
        "none",
        "what a run trains: 'none' (all weights), 'lora' (LoRA adapters) or 'prompt_tuning' "
        "(virtual tokens before the prompt); adapter runs save only the adapter, naming "
        "their base checkpoint (use_lora=true is the old spelling of peft=lora)",
    )
    num_virtual_tokens: int = param(8, "virtual tokens learned by a prompt-tuning run (peft=prompt_tuning)")
    lora_r: int = param(16, "LoRA rank")
    lora_alpha: int = param(32, "LoRA scaling alpha")
    lora_dropout: float = param(0.05, "LoRA dropout")
    num_processes: int = param(1, "processes for `accelerate launch` (one per GPU); 1 runs the trainer directly")
    accelerate_config: str = param("", "accelerate config file for multi-GPU runs (see deploy/accelerate/)")
    eval_samples: int = param(4, "samples per held-out prompt for the evaluation after the run (0 = skip)")

    @property
    def use_lora(self) -> bool:
        """The old name of ``peft == "lora"``."""
        return self.peft == "lora"


@dataclass
class OnlineParams(CommonParams):
    """Online RL against a reward model (RLOO, GRPO, PPO): sampling and the pull to the reference."""

    max_prompt_length: int = param(256, "prompt tokens kept (from the end); TRL does not truncate prompts")
    max_completion_length: int = param(48, "longest sampled answer, in tokens")
    temperature: float = param(1.0, "sampling temperature of the rollouts")
    beta: float = param(0.05, "KL penalty towards the reference (the base policy)")
    prompt_tag: str = param("", "train only on prompts with this tag (empty = all prompts)")
