"""Parameters of online RL against a reward model: RLOO and GRPO (TRL), PPO (ours, in ``ppo.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.training.config import CommonParams, _f, register_params


@dataclass
class OnlineParams(CommonParams):
    # Moves the tiny model within ~20 steps; scale down (1e-6..1e-5) for billion-parameter models.
    learning_rate: float = _f(5e-4, "peak learning rate")
    steps: int = _f(30, "optimizer steps")
    batch_size: int = _f(8, "completions per device per step; must divide by num_generations")
    num_generations: int = _f(4, "completions sampled per prompt (the group RLOO/GRPO compare within)")
    max_prompt_length: int = _f(256, "prompt tokens kept (from the end); TRL does not truncate prompts")
    max_completion_length: int = _f(48, "longest sampled answer, in tokens")
    temperature: float = _f(1.0, "sampling temperature of the rollouts")
    beta: float = _f(0.05, "KL penalty towards the reference (the base policy)")
    prompt_tag: str = _f("", "train only on prompts with this tag (empty = all prompts)")


@dataclass
class RLOOParams(OnlineParams):
    pass


@dataclass
class GRPOParams(OnlineParams):
    pass


register_params("rloo", RLOOParams)
register_params("grpo", GRPOParams)


def _register_ppo() -> None:
    from rlhf.training.ppo import PPOParams

    register_params("ppo", PPOParams)


_register_ppo()
