"""Hyper-parameters of PPO (:func:`rlhf.training.ppo.trainer.train_ppo`), grouped by concern.

The names shared with the other algorithms come from :class:`OnlineParams`: ``steps``
counts PPO updates, ``batch_size`` the responses sampled per update, ``beta`` weighs the
KL penalty and ``max_completion_length`` bounds a response. The names this class used
before (``total_updates``, ``rollout_batch_size``, ``kl_coef``, ``max_new_tokens``) are
accepted by the parameter registry as aliases (see :data:`PPOParams.ALIASES`).

The defaults suit a small model on a CPU. On the project's tiny SFT-warmed model with a
reward model that prefers one marker word, learning rate 5e-5 took the evaluation
score from -2.4 to +4.3 (of a +4.8 ceiling) in 20 updates at a summed KL of ~4 nats;
2e-4 got there in 10 updates but drifted to a KL of ~20 and halved the response
length; 1e-5 had barely moved after 10. For a model of billions of parameters, lower
the learning rate 10-50x (or use LoRA) and raise the batch sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlhf.training.base_params import OnlineParams, param


@dataclass
class PPOParams(OnlineParams):
    # Spellings users may have stored in runs or scripts, mapped to today's names.
    ALIASES: ClassVar[dict[str, str]] = {
        "total_updates": "steps",
        "rollout_batch_size": "batch_size",
        "kl_coef": "beta",
        "max_new_tokens": "max_completion_length",
    }
    SINGLE_PROCESS: ClassVar[bool] = True  # the loop has no distributed code path
    NO_PROMPT_TUNING: ClassVar[str] = (
        "its value model is initialised from the policy or reward weights as a "
        "sequence classifier, which a prompt-tuning adapter (virtual input "
        "tokens, not weights) cannot be merged into; PPO trains LoRA (peft=lora) "
        "or all weights"
    )

    # --- shared fields, PPO's meaning and defaults ---
    steps: int = param(50, "PPO updates; each samples `batch_size` fresh responses, then optimises on them")
    learning_rate: float = param(5e-5, "AdamW learning rate of the policy (or of its LoRA adapters)")
    batch_size: int = param(16, "prompts sampled (one response each) per update: the rollout")
    gradient_accumulation_steps: int = param(
        1, "micro-batches each minibatch is split into (same update, less memory per forward pass)"
    )
    seed: int = param(42, "seed for prompt order, sampling and initialisation")
    logging_steps: int = param(1, "report the update's statistics every N updates (and at evaluations)")
    lora_dropout: float = param(0.0, "LoRA dropout; 0 keeps the rollout's and the update's log-probs equal")
    beta: float = param(0.05, "weight of the per-token KL penalty to the frozen reference policy")
    temperature: float = param(1.0, "sampling temperature; log-probabilities are computed at the same temperature")

    # --- optimisation ---
    value_learning_rate: float | None = param(None, "AdamW learning rate of the value model; None uses `learning_rate`")
    anneal_lr: bool = param(True, "decay both learning rates linearly to 0 over `steps` (the classic PPO recipe)")
    num_ppo_epochs: int = param(4, "optimisation passes over each rollout batch")
    mini_batch_size: int = param(8, "responses per gradient step (also the chunk size of the no-grad forward passes)")
    max_grad_norm: float = param(1.0, "gradient-norm clip, applied to the policy and the value model separately")

    # --- PPO / RL ---
    gamma: float = param(1.0, "discount factor of the per-token rewards")
    lam: float = param(0.95, "GAE lambda: bias/variance trade-off of the advantages")
    cliprange: float = param(0.2, "policy ratio clip epsilon: the ratio is kept within [1-eps, 1+eps]")
    cliprange_value: float = param(0.2, "value clip: new values may move at most this far from the rollout's")
    vf_coef: float = param(0.1, "weight of the value loss in the total loss")
    whiten_advantages: bool = param(True, "normalise advantages to mean 0 / std 1 over the valid tokens of a batch")
    missing_eos_penalty: float | None = param(
        1.0, "subtracted from the score of a response cut off at `max_completion_length`; null: off"
    )
    value_model_init: str = param(
        "auto",
        "where the value model starts: 'reward' (the reward checkpoint), 'policy' (the policy checkpoint "
        "with a fresh score head) or 'auto' (reward when its vocabulary equals the policy's)",
    )

    # --- LoRA ---
    lora_target_modules: str | list[str] = param("all-linear", "modules that get adapters (peft's `target_modules`)")

    # --- evaluation during training ---
    eval_num_prompts: int = param(
        16, "fixed training prompts scored before training, every `eval_every` updates and at the end; 0: off"
    )
    eval_samples_per_prompt: int = param(
        16, "seeded samples per evaluation prompt; a mean over fewer than ~256 samples is noisy"
    )
    eval_every: int = param(0, "evaluate every this many updates as well as before and after; 0: only those two")
