"""PPO against a reward model: the project's own implementation.

TRL dropped ``PPOTrainer`` in 1.13; this module keeps the classic RLHF recipe (Ziegler
et al. 2019, Ouyang et al. 2022, TRL's former PPOv2) as one plain function,
:func:`train_ppo`, written against transformers models and TRL's stable tensor utilities.

One *update* is: sample responses to a batch of prompts from the policy, score them with
the frozen reward model, turn the scores into per-token rewards with a KL penalty to a
frozen reference copy of the starting policy, estimate advantages with GAE on a learned
value model, then run a few epochs of clipped PPO over shuffled minibatches.

The loss arithmetic lives in small pure functions (:func:`compute_gae`,
:func:`policy_loss`, :func:`value_loss`, ...) so tests can check it by hand.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
)
from trl.trainer.utils import disable_dropout_in_model, entropy_from_logits, pad, selective_log_softmax

from rlhf.errors import ConfigError, InvalidInput, RLHFError, TrainingFailed


class TrainingStopped(RLHFError):
    """``should_stop()`` asked for a stop; nothing was saved to ``output_dir``."""


@dataclass
class PPOParams:
    """Hyper-parameters of :func:`train_ppo`, grouped by concern.

    The defaults suit a small model on a CPU. On the project's tiny SFT-warmed model with a
    reward model that prefers one marker word, learning rate 5e-5 took the evaluation
    score from -2.4 to +4.3 (of a +4.8 ceiling) in 20 updates at a summed KL of ~4 nats;
    2e-4 got there in 10 updates but drifted to a KL of ~20 and halved the response
    length; 1e-5 had barely moved after 10. For a model of billions of parameters, lower
    the learning rate 10-50x (or use LoRA) and raise the batch sizes.
    """

    # --- optimisation ---
    learning_rate: float = field(
        default=5e-5,
        metadata={"help": "AdamW learning rate of the policy (or of its LoRA adapters)."},
    )
    value_learning_rate: float | None = field(
        default=None,
        metadata={"help": "AdamW learning rate of the value model; None uses `learning_rate`."},
    )
    anneal_lr: bool = field(
        default=True,
        metadata={"help": "Decay both learning rates linearly to 0 over `total_updates` (the classic PPO recipe)."},
    )
    total_updates: int = field(
        default=50,
        metadata={"help": "Number of PPO updates; each samples `rollout_batch_size` fresh responses."},
    )
    rollout_batch_size: int = field(
        default=16,
        metadata={"help": "Prompts sampled (one response each) per update."},
    )
    num_ppo_epochs: int = field(
        default=4,
        metadata={"help": "Optimisation passes over each rollout batch."},
    )
    mini_batch_size: int = field(
        default=8,
        metadata={"help": "Responses per gradient step (also the chunk size of the no-grad forward passes)."},
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata={"help": "Gradient-norm clip, applied to the policy and the value model separately."},
    )
    seed: int = field(default=42, metadata={"help": "Seed for prompt order, sampling and initialisation."})

    # --- generation ---
    max_prompt_length: int = field(
        default=256,
        metadata={"help": "Prompt tokens kept after the chat template; longer prompts lose their beginning."},
    )
    max_new_tokens: int = field(default=48, metadata={"help": "Longest sampled response, in tokens."})
    temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature; log-probabilities are computed at the same temperature."},
    )

    # --- PPO / RL ---
    kl_coef: float = field(
        default=0.05,
        metadata={"help": "Weight of the per-token KL penalty to the frozen reference policy."},
    )
    gamma: float = field(default=1.0, metadata={"help": "Discount factor of the per-token rewards."})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda: bias/variance trade-off of the advantages."})
    cliprange: float = field(
        default=0.2,
        metadata={"help": "Policy ratio clip epsilon: the ratio is kept within [1-eps, 1+eps]."},
    )
    cliprange_value: float = field(
        default=0.2,
        metadata={"help": "Value clip: new values may move at most this far from the rollout's values."},
    )
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss in the total loss."})
    whiten_advantages: bool = field(
        default=True,
        metadata={"help": "Normalise advantages to mean 0 / std 1 over the valid tokens of each batch."},
    )
    missing_eos_penalty: float | None = field(
        default=1.0,
        metadata={"help": "Subtracted from the score of a response cut off at `max_new_tokens`; None: off."},
    )
    value_model_init: str = field(
        default="auto",
        metadata={
            "help": "Where the value model starts: 'reward' (the reward checkpoint), 'policy' (the policy "
            "checkpoint with a fresh score head) or 'auto' (reward when its vocabulary equals the policy's)."
        },
    )

    # --- LoRA ---
    use_lora: bool = field(
        default=False,
        metadata={
            "help": "Train LoRA adapters on the policy instead of all its weights; merged before saving. Adapters "
            "want a ~10x higher `learning_rate`; keep `value_learning_rate` at the full-model rate."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(
        default=0.0, metadata={"help": "LoRA dropout; 0 keeps the rollout's and the update's log-probs equal."}
    )
    lora_target_modules: str | list[str] = field(
        default="all-linear",
        metadata={"help": "Modules that get adapters (peft's `target_modules`)."},
    )

    # --- evaluation ---
    eval_num_prompts: int = field(
        default=16,
        metadata={"help": "Fixed prompts scored before training, every `eval_every` updates and at the end; 0: off."},
    )
    eval_samples_per_prompt: int = field(
        default=16,
        metadata={"help": "Seeded samples per evaluation prompt; a mean over fewer than ~256 samples is noisy."},
    )
    eval_every: int = field(
        default=0,
        metadata={"help": "Evaluate every this many updates as well as before and after; 0: only before and after."},
    )


# ---------------------------------------------------------------------------
# Pure tensor arithmetic
# ---------------------------------------------------------------------------


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is true (0 where nothing is)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over the masked positions (Bessel-corrected, as TRL and OpenAI did)."""
    mean = masked_mean(values, mask)
    n = mask.to(values.dtype).sum()
    var = masked_mean((values - mean) ** 2, mask)
    return var * n / (n - 1).clamp(min=1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise to unit variance (and zero mean) using only the masked positions.

    Padding must not count: it would drag the mean towards 0 and shrink the std, so a
    batch with short responses would get larger advantages. Masked positions come out 0.
    """
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def response_mask_after_eos(
    response_ids: torch.Tensor, eos_id: int | Collection[int], pad_id: int | None
) -> torch.Tensor:
    """Bool mask of the real response tokens: up to and including the first EOS.

    ``generate`` keeps emitting padding for rows that finished early; everything after
    the first EOS (and, for a row without EOS, from the first pad token on) is not part
    of the response. The EOS itself stays: choosing to stop is an action the policy must
    be credited for, and the reward lands on it.
    """
    eos_ids = torch.tensor([eos_id] if isinstance(eos_id, int) else sorted(eos_id), device=response_ids.device)
    length = response_ids.shape[1]
    positions = torch.arange(length, device=response_ids.device).expand_as(response_ids)
    no_hit = torch.full_like(response_ids, length)

    is_eos = torch.isin(response_ids, eos_ids)
    first_eos = torch.where(is_eos, positions, no_hit).min(dim=1).values
    end = (first_eos + 1).clamp(max=length)
    if pad_id is not None and pad_id not in eos_ids.tolist():
        first_pad = torch.where(response_ids == pad_id, positions, no_hit).min(dim=1).values
        end = torch.minimum(end, first_pad)
    return positions < end.unsqueeze(1)


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each response (Schulman et al. 2016).

    ``rewards``, ``values`` and ``mask`` are ``(batch, tokens)``; a response ends at its
    last masked-in token, so the value after it is taken as 0 (the episode is over).
    Returns ``(advantages, returns)``, both 0 outside the mask; ``returns = advantages
    + values`` is the value model's regression target.
    """
    mask = mask.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_mask = mask[:, t + 1] if t + 1 < length else torch.zeros_like(last_gae)
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value * next_mask - values[:, t]
        last_gae = delta + gamma * lam * next_mask * last_gae
        advantages[:, t] = last_gae
    advantages = advantages * mask
    returns = (advantages + values) * mask
    return advantages, returns


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate loss of PPO; returns ``(loss, clipfrac)``.

    Taking the worse of the clipped and unclipped objective removes the incentive to push
    the probability ratio beyond ``1 ± cliprange``: there the gradient is exactly zero.
    ``clipfrac`` is the share of tokens where the clipped term was the one used.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    return loss, clipfrac.detach()


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped squared-error value loss; returns ``(loss, clipfrac)``.

    As with the policy, the pessimistic maximum of the clipped and unclipped error keeps a
    single batch from moving a value estimate far from its rollout value.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    clipfrac = masked_mean((clipped_error > unclipped_error).to(values.dtype), mask)
    return loss, clipfrac.detach()


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate that is never negative.

    ``logprobs - ref_logprobs`` is unbiased but negative on some tokens, which makes a
    logged mean hard to read; Schulman's k3 estimator ``(r - 1) - log r`` with
    ``r = p_ref / p`` is unbiased too and always >= 0.
    """
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


# ---------------------------------------------------------------------------
# Model plumbing
# ---------------------------------------------------------------------------


def _token_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Score-head output at every position, ``(batch, tokens)``.

    A sequence-classification model's own ``forward`` pools at the last token that is not
    ``pad_token_id``, which goes wrong when pad and EOS are the same token; running the
    backbone and the ``score`` head ourselves gives per-token values (for the value model)
    and lets the caller pick the position (for the reward).
    """
    head = getattr(model, "score", None)
    if head is None:
        raise ConfigError(
            f"{type(model).__name__} has no `score` head; PPO needs a decoder-style sequence-classification model."
        )
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    backbone = getattr(model, model.base_model_prefix)
    hidden = backbone(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state
    return head(hidden).squeeze(-1)


def _response_logits(policy, input_ids, attention_mask, context_length: int, temperature: float):
    """Logits that predicted each response token, scaled by the sampling temperature."""
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    logits = policy(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).logits
    return logits[:, context_length - 1 : -1] / temperature


def _encode_prompts(tokenizer, prompts: Sequence[list[dict]], max_length: int, pad_id: int, device):
    """Chat-template the prompts, keep their last ``max_length`` tokens and left-pad them.

    Left truncation keeps the latest turns, which the answer depends on most. Left
    padding lines every prompt up against the first generated token.
    """
    rows = []
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        rows.append(torch.tensor(ids[-max_length:], dtype=torch.long))
    masks = [torch.ones_like(r) for r in rows]
    return (
        pad(rows, padding_value=pad_id, padding_side="left").to(device),
        pad(masks, padding_value=0, padding_side="left").to(device),
    )


def _score_responses(
    reward_model, reward_tokenizer, prompts: Sequence[list[dict]], responses: Sequence[str], chunk: int, device
) -> torch.Tensor:
    """Reward-model score of each conversation (prompt + response), shape ``(batch,)``.

    The conversation is rendered with the reward model's own tokenizer and chat template,
    exactly as ``RewardTrainer`` rendered its training pairs, so a reward model whose
    tokenizer differs from the policy's scores the text it was trained on. The score is
    the head's output at the last real token (right padding).
    """
    pad_id = reward_tokenizer.pad_token_id
    pad_id = reward_tokenizer.eos_token_id if pad_id is None else pad_id
    max_len = getattr(reward_model.config, "max_position_embeddings", None)
    rows = []
    for messages, response in zip(prompts, responses, strict=True):
        conversation = [*messages, {"role": "assistant", "content": response}]
        ids = reward_tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
        rows.append(torch.tensor(ids[-max_len:] if max_len else ids, dtype=torch.long))
    scores = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        ids = pad(part, padding_value=pad_id, padding_side="right").to(device)
        mask = pad([torch.ones_like(r) for r in part], padding_value=0, padding_side="right").to(device)
        per_token = _token_scores(reward_model, ids, mask)
        last = mask.sum(1) - 1
        scores.append(per_token[torch.arange(len(part), device=device), last])
    return torch.cat(scores)


def _generation_config(params: PPOParams, eos_ids: list[int], pad_id: int) -> GenerationConfig:
    # Plain ancestral sampling. Any truncation of the distribution (top-k, top-p, a
    # repetition penalty) would make the rollout log-probs disagree with the ones PPO
    # computes from the full softmax. Unset fields are filled from the model's own
    # generation_config and then from transformers' defaults (top_k=50), so the knobs
    # are set here and this config also replaces the model's own while training.
    return GenerationConfig(
        do_sample=True,
        temperature=params.temperature,
        top_k=0,
        top_p=1.0,
        typical_p=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        max_new_tokens=params.max_new_tokens,
        min_new_tokens=0,
        eos_token_id=eos_ids,
        pad_token_id=pad_id,
    )


@dataclass
class _Models:
    """Everything loaded for a run; ``reference`` is None when LoRA adapters are trained."""

    tokenizer: object
    reward_tokenizer: object
    policy: torch.nn.Module
    reference: torch.nn.Module | None
    value: torch.nn.Module
    reward: torch.nn.Module
    eos_ids: list[int]
    pad_id: int
    generation_config: GenerationConfig
    saved_generation_config: GenerationConfig
    device: torch.device


def _load_value_model(params: PPOParams, policy_path: str, reward_model_path: str, same_vocab: bool):
    """Value model: the reward checkpoint by default, the policy checkpoint otherwise.

    Starting from the reward model (the OpenAI / TRL recipe) gives a score head already on
    the reward's scale and a backbone that already judges responses, so the first
    advantages carry signal instead of noise from a random head; being a separate network,
    its gradients never disturb the policy. It reads the policy's token ids, though, so it
    needs the policy's vocabulary: with another tokenizer, the policy checkpoint with a
    fresh score head is the fallback.
    """
    choice = params.value_model_init
    if choice not in ("auto", "reward", "policy"):
        raise ConfigError(f"value_model_init must be 'auto', 'reward' or 'policy', not {choice!r}")
    if choice == "reward" and not same_vocab:
        raise ConfigError("value_model_init='reward' needs a reward model with the policy's vocabulary")
    source = reward_model_path if choice == "reward" or (choice == "auto" and same_vocab) else policy_path
    return AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)


def _load_models(policy_path: str, reward_model_path: str, params: PPOParams) -> _Models:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(policy_path)
    reward_tokenizer = AutoTokenizer.from_pretrained(reward_model_path)
    policy = AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32)
    saved = policy.generation_config
    eos_ids = sorted(
        ({tokenizer.eos_token_id} | set(_as_list(saved.eos_token_id)) | set(_as_list(policy.config.eos_token_id)))
        - {None}
    )
    if not eos_ids:
        raise ConfigError("the policy tokenizer defines no EOS token, so a response could never end")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    generation_config = _generation_config(params, eos_ids, pad_id)
    policy.generation_config = generation_config

    reference = None
    if params.use_lora:
        from peft import LoraConfig, get_peft_model

        # The reference is then the same weights with the adapters switched off: no copy.
        lora = LoraConfig(
            r=params.lora_r,
            lora_alpha=params.lora_alpha,
            lora_dropout=params.lora_dropout,
            target_modules=params.lora_target_modules,
            task_type="CAUSAL_LM",
        )
        policy = get_peft_model(policy, lora)
    else:
        reference = AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32)
    same_vocab = reward_tokenizer.get_vocab() == tokenizer.get_vocab()
    value = _load_value_model(params, policy_path, reward_model_path, same_vocab)
    reward = AutoModelForSequenceClassification.from_pretrained(reward_model_path, num_labels=1, dtype=torch.float32)

    for model in (policy, reference, value, reward):
        if model is not None:
            # No dropout anywhere: a token's log-prob in the update must equal the one
            # recorded when it was sampled, or the ratio starts off != 1.
            disable_dropout_in_model(model)
            model.to(device)
    for frozen in (reference, reward):
        if frozen is not None:
            frozen.requires_grad_(False).eval()
    return _Models(
        tokenizer=tokenizer,
        reward_tokenizer=reward_tokenizer,
        policy=policy,
        reference=reference,
        value=value,
        reward=reward,
        eos_ids=eos_ids,
        pad_id=pad_id,
        generation_config=generation_config,
        saved_generation_config=saved,
        device=device,
    )


def _rollout(m: _Models, prompts: Sequence[list[dict]], params: PPOParams) -> dict:
    """Sample one response per prompt; responses are padded after their first EOS."""
    query, query_mask = _encode_prompts(m.tokenizer, prompts, params.max_prompt_length, m.pad_id, m.device)
    output = m.policy.generate(input_ids=query, attention_mask=query_mask, generation_config=m.generation_config)
    response = output[:, query.shape[1] :]
    mask = response_mask_after_eos(response, m.eos_ids, m.pad_id)
    width = max(1, int(mask.sum(1).max()))
    response, mask = response[:, :width].masked_fill(~mask[:, :width], m.pad_id), mask[:, :width]
    is_eos = torch.isin(response, torch.tensor(m.eos_ids, device=m.device)) & mask
    texts = [
        m.tokenizer.decode(row[keep & ~eos], skip_special_tokens=True).strip()
        for row, keep, eos in zip(response, mask, is_eos, strict=True)
    ]
    return {
        "query": query,
        "query_mask": query_mask,
        "response": response,
        "mask": mask,
        "texts": texts,
        "has_eos": is_eos.any(1),
    }


def _experience(m: _Models, prompts: Sequence[list[dict]], params: PPOParams) -> dict:
    """A rollout plus its old log-probs, values, scores, per-token rewards and advantages."""
    batch = _rollout(m, prompts, params)
    query, response, mask = batch["query"], batch["response"], batch["mask"]
    context = query.shape[1]
    input_ids = torch.cat([query, response], 1)
    attention_mask = torch.cat([batch["query_mask"], mask.long()], 1)
    chunk = max(1, params.mini_batch_size)
    logprobs, ref_logprobs, values = [], [], []
    for rows in torch.arange(len(prompts), device=m.device).split(chunk):
        ids, attn = input_ids[rows], attention_mask[rows]
        logits = _response_logits(m.policy, ids, attn, context, params.temperature)
        logprobs.append(selective_log_softmax(logits, response[rows]))
        if m.reference is None:
            with m.policy.disable_adapter():
                ref_logits = _response_logits(m.policy, ids, attn, context, params.temperature)
        else:
            ref_logits = _response_logits(m.reference, ids, attn, context, params.temperature)
        ref_logprobs.append(selective_log_softmax(ref_logits, response[rows]))
        values.append(_token_scores(m.value, ids, attn)[:, context - 1 : -1])
    fmask = mask.to(torch.float32)
    logprobs, ref_logprobs = torch.cat(logprobs) * fmask, torch.cat(ref_logprobs) * fmask
    values = torch.cat(values) * fmask

    raw_scores = _score_responses(m.reward, m.reward_tokenizer, prompts, batch["texts"], chunk, m.device)
    scores = raw_scores.clone()
    if params.missing_eos_penalty is not None:
        scores[~batch["has_eos"]] -= params.missing_eos_penalty
    # The KL penalty is paid on every token, the score only on the last one; GAE and the
    # value model spread the score back over the tokens that earned it.
    rewards = -params.kl_coef * (logprobs - ref_logprobs)
    last = mask.sum(1) - 1
    rewards[torch.arange(len(last), device=m.device), last] += scores
    advantages, returns = compute_gae(rewards * fmask, values, mask, params.gamma, params.lam)
    if params.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    return {
        **batch,
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "context": context,
        "logprobs": logprobs,
        "ref_logprobs": ref_logprobs,
        "values": values,
        "raw_scores": raw_scores,
        "advantages": advantages,
        "returns": returns,
    }


def _optimise(m: _Models, exp: dict, optimizer, params: PPOParams) -> dict[str, float]:
    """``num_ppo_epochs`` passes of clipped PPO over shuffled minibatches; returns mean stats."""
    policy_params = [p for p in m.policy.parameters() if p.requires_grad]
    value_params = list(m.value.parameters())
    mask, context = exp["mask"], exp["context"]
    keys = ("policy_loss", "value_loss", "entropy", "clipfrac", "value_clipfrac")
    stats: dict[str, list[float]] = {key: [] for key in keys}
    epoch_value_loss: list[float] = []  # per epoch: the value model fitting this batch's returns
    for _ in range(params.num_ppo_epochs):
        epoch_start = len(stats["value_loss"])
        for idx in torch.randperm(len(mask), device=m.device).split(max(1, params.mini_batch_size)):
            ids, attn, mb_mask = exp["input_ids"][idx], exp["attention_mask"][idx], mask[idx]
            logits = _response_logits(m.policy, ids, attn, context, params.temperature)
            logprobs = selective_log_softmax(logits, exp["response"][idx])
            values = _token_scores(m.value, ids, attn)[:, context - 1 : -1]
            pg_loss, clipfrac = policy_loss(
                logprobs, exp["logprobs"][idx], exp["advantages"][idx], mb_mask, params.cliprange
            )
            vf_loss, vf_clipfrac = value_loss(
                values, exp["values"][idx], exp["returns"][idx], mb_mask, params.cliprange_value
            )
            optimizer.zero_grad(set_to_none=True)
            (pg_loss + params.vf_coef * vf_loss).backward()
            # Clipped apart: the value gradient is on another scale and must not use up
            # the policy's share of a joint norm budget.
            torch.nn.utils.clip_grad_norm_(policy_params, params.max_grad_norm)
            torch.nn.utils.clip_grad_norm_(value_params, params.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                entropy = masked_mean(entropy_from_logits(logits), mb_mask)
            for key, value in zip(stats, (pg_loss, vf_loss, entropy, clipfrac, vf_clipfrac), strict=True):
                stats[key].append(float(value.detach()))
        epoch = stats["value_loss"][epoch_start:]
        epoch_value_loss.append(sum(epoch) / len(epoch))
    return {**{key: sum(values) / len(values) for key, values in stats.items()},
            "value_loss_first_epoch": epoch_value_loss[0], "value_loss_last_epoch": epoch_value_loss[-1]}


def _evaluate(m: _Models, prompts: list[list[dict]], params: PPOParams) -> tuple[float, float]:
    """Mean raw score and response length on the evaluation prompts, with its own seed.

    The RNG is forked so evaluating does not change the training samples: a run with
    evaluation every N updates trains exactly like one without.
    """
    scores, lengths = [], []
    devices = [m.device] if m.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(params.seed + 1)
        for start in range(0, len(prompts), params.rollout_batch_size):
            part = prompts[start : start + params.rollout_batch_size]
            batch = _rollout(m, part, params)
            chunk = max(1, params.mini_batch_size)
            scores.append(_score_responses(m.reward, m.reward_tokenizer, part, batch["texts"], chunk, m.device))
            lengths.append(batch["mask"].sum(1).to(torch.float32))
    return float(torch.cat(scores).mean()), float(torch.cat(lengths).mean())


def train_ppo(
    *,
    policy_path: str,
    reward_model_path: str,
    prompts: list[list[dict]],
    output_dir: str,
    params: PPOParams,
    on_log: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train the policy at ``policy_path`` with PPO against the reward model; save it to ``output_dir``.

    ``prompts`` are conversations ending with a user turn. Four models take part: the
    policy (trained), a frozen reference copy of it (with LoRA, the same weights with the
    adapters off), a value model (see :func:`_load_value_model`) and the frozen reward
    model. All run in float32, on CUDA when available, otherwise on the CPU.

    ``on_log`` receives one dict per update: ``step, policy_loss, value_loss, score``
    (mean raw reward-model score of the rollout), ``kl`` (mean over responses of the
    summed per-token KL to the reference, k3 estimator), ``entropy, clipfrac,
    value_clipfrac, response_length, eos_fraction, seconds``; on evaluation steps also
    ``eval_score`` and ``eval_response_length`` (step 0 is the evaluation before training).

    ``should_stop`` is polled before every update and before saving; when it returns
    True, :class:`TrainingStopped` is raised and nothing is written to ``output_dir`` (a
    stop is the caller's decision, not a failure, so it is not a return value to check).

    Saved with ``save_pretrained``: the policy (LoRA merged), its tokenizer and the
    generation config it came with; the caller renames the directory into place.
    Returns ``updates, seconds, score_first, score_final, kl_mean, kl_final,
    value_loss_first, value_loss_final`` and, with evaluation on, ``eval_score_before``
    and ``eval_score_after``.
    """
    if not prompts:
        raise InvalidInput("PPO needs at least one prompt")
    if any(not messages or messages[-1].get("role") != "user" for messages in prompts):
        raise InvalidInput("every PPO prompt must be a conversation ending with a user turn")
    started = time.monotonic()
    torch.manual_seed(params.seed)
    m = _load_models(policy_path, reward_model_path, params)
    m.policy.train()
    m.value.train()

    value_lr = params.learning_rate if params.value_learning_rate is None else params.value_learning_rate
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in m.policy.parameters() if p.requires_grad], "lr": params.learning_rate},
            {"params": list(m.value.parameters()), "lr": value_lr},
        ],
        eps=1e-5,  # as in the OpenAI and TRL PPO code
        weight_decay=0.0,  # the KL penalty already anchors the policy
    )
    total = max(1, params.total_updates)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: 1.0 - done / total if params.anneal_lr else 1.0
    )

    rng = random.Random(params.seed)
    eval_prompts: list[list[dict]] = []
    if params.eval_num_prompts > 0:
        # A fixed subset of the training prompts: it measures how well PPO optimises the
        # reward, not generalisation (there are rarely enough prompts to hold some out).
        chosen = rng.sample(range(len(prompts)), min(params.eval_num_prompts, len(prompts)))
        eval_prompts = [prompts[i] for i in chosen for _ in range(params.eval_samples_per_prompt)]
    eval_before = eval_after = None
    if eval_prompts:
        eval_before, eval_length = _evaluate(m, eval_prompts, params)
        if on_log:
            on_log({"step": 0, "eval_score": eval_before, "eval_response_length": eval_length})

    order: list[int] = []
    history: list[dict] = []
    for step in range(1, params.total_updates + 1):
        if should_stop and should_stop():
            raise TrainingStopped(f"PPO stopped on request after {step - 1} of {params.total_updates} updates")
        update_started = time.monotonic()
        batch_prompts = []
        while len(batch_prompts) < params.rollout_batch_size:
            if not order:  # one shuffled pass over the prompts after another
                order = rng.sample(range(len(prompts)), len(prompts))
            batch_prompts.append(prompts[order.pop()])

        with torch.no_grad():
            exp = _experience(m, batch_prompts, params)
        record = {"step": step, **_optimise(m, exp, optimizer, params)}
        scheduler.step()
        fmask = exp["mask"].to(torch.float32)
        record |= {
            "score": float(exp["raw_scores"].mean()),
            "kl": float((kl_estimate(exp["logprobs"], exp["ref_logprobs"]) * fmask).sum(1).mean()),
            "response_length": float(fmask.sum(1).mean()),
            "eos_fraction": float(exp["has_eos"].to(torch.float32).mean()),
            "seconds": time.monotonic() - update_started,
        }
        if not all(math.isfinite(v) for v in record.values()):
            raise TrainingFailed(f"PPO diverged at update {step}: {record}")
        if eval_prompts and (step == params.total_updates or (params.eval_every and step % params.eval_every == 0)):
            eval_after, record["eval_response_length"] = _evaluate(m, eval_prompts, params)
            record["eval_score"] = eval_after
        history.append(record)
        if on_log:
            on_log(record)

    if should_stop and should_stop():
        raise TrainingStopped(f"PPO stopped on request after {params.total_updates} updates, before saving")
    policy = m.policy.merge_and_unload() if params.use_lora else m.policy
    # The sampling config used for training stays out of the checkpoint: serving keeps
    # the defaults the model came with.
    policy.generation_config = m.saved_generation_config
    policy.save_pretrained(output_dir)
    m.tokenizer.save_pretrained(output_dir)
    m.saved_generation_config.save_pretrained(output_dir)

    metrics: dict = {"updates": len(history), "seconds": time.monotonic() - started}
    if history:
        metrics |= {
            "score_first": history[0]["score"],
            "score_final": history[-1]["score"],
            "kl_mean": sum(r["kl"] for r in history) / len(history),
            "kl_final": history[-1]["kl"],
            "value_loss_first": history[0]["value_loss"],
            "value_loss_final": history[-1]["value_loss"],
        }
    if eval_prompts:
        metrics["eval_score_before"] = eval_before
        metrics["eval_score_after"] = eval_before if eval_after is None else eval_after
    return metrics


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
