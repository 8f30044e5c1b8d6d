"""Online RL against a reward model: TRL's ``RLOOTrainer`` / ``GRPOTrainer``, and our own PPO.

Prompts are conversations, so the reward model sees the same chat-formatted text it was
trained on (a plain-text prompt would be scored without the template and its EOS). TRL
does not truncate prompts; we keep the end of each (the question) within the limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlhf.modeling.tokens import load_tokenizer
from rlhf.training.trl_setup import ProgressCallback, final_loss, peft_config, save_model, trainer_kwargs


def truncate_prompt(tokenizer, messages: list[dict], max_tokens: int) -> list[dict]:
    """Drop the oldest turns, then the start of the last one, until the rendered prompt fits."""

    def length(msgs):
        return len(
            tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )

    msgs = [dict(m) for m in messages]
    while length(msgs) > max_tokens and len(msgs) > 1:
        drop = 1 if msgs[0]["role"] == "system" and len(msgs) > 2 else 0
        msgs.pop(drop)
    while length(msgs) > max_tokens and len(msgs[-1]["content"]) > 1:
        content = msgs[-1]["content"]
        msgs[-1]["content"] = content[len(content) // 4 or 1 :]
    return msgs


def _trainer_class(algorithm: str):
    if algorithm == "rloo":
        from trl import RLOOTrainer

        return RLOOTrainer
    if algorithm == "grpo":
        from trl import GRPOTrainer

        return GRPOTrainer
    raise ValueError(f"unknown online algorithm {algorithm!r}")


def _config_class(algorithm: str):
    if algorithm == "rloo":
        from trl import RLOOConfig

        return RLOOConfig
    if algorithm == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    raise ValueError(f"unknown online algorithm {algorithm!r}")


def online_config(algorithm: str, params, work_dir: Path, trl_overrides: dict | None = None):
    """TRL's RLOO or GRPO config for a run."""
    Config = _config_class(algorithm)
    return Config(
        **trainer_kwargs(
            params,
            work_dir,
            {
                "num_generations": params.num_generations,
                "max_completion_length": params.max_completion_length,
                "temperature": params.temperature,
                "beta": params.beta,
                **(trl_overrides or {}),
            },
        )
    )


def online_prompts(tokenizer, prompts: list[dict], params) -> list[dict]:
    """The training rows: each prompt cut to ``max_prompt_length`` tokens (TRL does not truncate prompts)."""
    return [{"prompt": truncate_prompt(tokenizer, p["prompt"], params.max_prompt_length)} for p in prompts]


def train_online(
    *,
    algorithm: str,
    base: str,
    reward_model: str,
    prompts: list[dict],
    output_dir: Path,
    params,
    trl_overrides: dict | None,
    work_dir: Path,
    on_log=None,
    should_stop=None,
) -> dict[str, Any]:
    if algorithm == "ppo":
        return _ppo(base, reward_model, prompts, output_dir, params, on_log, should_stop)
    from datasets import Dataset

    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "left"
    data = Dataset.from_list(online_prompts(tokenizer, prompts, params))
    args = online_config(algorithm, params, work_dir, trl_overrides)
    Trainer = _trainer_class(algorithm)
    reward_tok = load_tokenizer(reward_model)
    trainer = Trainer(
        model=base,
        reward_funcs=reward_model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        reward_processing_classes=reward_tok,
        callbacks=[ProgressCallback(on_log, should_stop)],
        peft_config=peft_config(params),
    )
    result = trainer.train()
    save_model(trainer, output_dir, tokenizer)
    rewards = [e["reward"] for e in trainer.state.log_history if "reward" in e]
    return {
        "train_loss": float(result.training_loss),
        "final_loss": final_loss(trainer),
        "steps": trainer.state.global_step,
        "prompts": len(prompts),
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
    }


def _ppo(base, reward_model, prompts, output_dir, params, on_log, should_stop) -> dict[str, Any]:
    from rlhf.training.ppo.trainer import TrainingStopped, train_ppo  # heavy: loads trl, datasets and pyarrow

    def log(values: dict) -> None:
        if on_log:
            on_log(int(values.get("step", 0)), {**values, "max_steps": params.steps})

    try:
        return train_ppo(
            policy_path=base,
            reward_model_path=reward_model,
            prompts=[p["prompt"] for p in prompts],
            output_dir=str(output_dir),
            params=params,
            on_log=log,
            should_stop=should_stop,
        )
    except TrainingStopped:
        return {"stopped": True}  # the child sees the stop file and exits as cancelled
