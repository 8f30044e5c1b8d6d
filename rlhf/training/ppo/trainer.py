"""PPO's loop: load the four models, sample, score, advantage, optimise, save (:func:`train_ppo`).

TRL dropped ``PPOTrainer`` in 1.13; this keeps the classic RLHF recipe (Ziegler et al.
2019, Ouyang et al. 2022, TRL's former PPOv2) as one plain function, written against
transformers models and TRL's stable tensor utilities. Its parameters are
:class:`~rlhf.training.ppo.config.PPOParams`; its arithmetic is in
:mod:`rlhf.training.ppo.losses`.

One *update* is: sample responses to a batch of prompts from the policy, score them with
the frozen reward model, turn the scores into per-token rewards with a KL penalty to a
frozen reference copy of the starting policy, estimate advantages with GAE on a learned
value model, then run a few epochs of clipped PPO over shuffled minibatches.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerBase,
)
from trl.trainer.utils import disable_dropout_in_model, entropy_from_logits, pad, selective_log_softmax

from rlhf.errors import ConfigError, InvalidInput, RLHFError, TrainingFailed
from rlhf.modeling.tokens import eos_token_ids
from rlhf.training.ppo.config import PPOParams
from rlhf.training.ppo.losses import (
    compute_gae,
    kl_estimate,
    masked_mean,
    masked_whiten,
    policy_loss,
    response_mask_after_eos,
    value_loss,
)
from rlhf.training.scoring import reward_scores, token_scores


class TrainingStopped(RLHFError):
    """``should_stop()`` asked for a stop; nothing was saved to ``output_dir``."""


def _response_logits(policy, input_ids, attention_mask, context_length: int, temperature: float):
    """Logits that predicted each response token, scaled by the sampling temperature.

    Only the positions that predict a response token go through the LM head
    (``logits_to_keep``): over the prompt its vocabulary-wide matmul, and its backward,
    would be thrown away.
    """
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    keep = input_ids.shape[1] - context_length + 1
    logits = policy(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
        logits_to_keep=keep,
    ).logits[:, :-1]
    return logits if temperature == 1.0 else logits / temperature


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


def _score_responses(m: _Models, prompts: Sequence[list[dict]], responses: Sequence[str], chunk: int):
    """Reward-model score of each conversation (prompt + response), shape ``(batch,)``.

    Rendered with the reward model's own tokenizer and chat template, as ``RewardTrainer``
    rendered its training pairs (see :func:`rlhf.training.scoring.reward_scores`).
    """
    conversations = [
        [*messages, {"role": "assistant", "content": response}]
        for messages, response in zip(prompts, responses, strict=True)
    ]
    return reward_scores(m.reward, m.reward_tokenizer, conversations, batch_size=chunk, max_length=None)


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
        max_new_tokens=params.max_completion_length,
        min_new_tokens=0,
        eos_token_id=eos_ids,
        pad_token_id=pad_id,
        return_dict_in_generate=True,
    )


@dataclass
class _Models:
    """Everything loaded for a run; ``reference`` is None when LoRA adapters are trained."""

    tokenizer: PreTrainedTokenizerBase
    reward_tokenizer: PreTrainedTokenizerBase
    # A causal LM, or for LoRA a PeftModel over one: the loop calls generate, disable_adapter and
    # save_pretrained, and no type in the transformers or peft stubs has all of them.
    policy: Any
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
    policy: Any = AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32)  # see _Models.policy
    saved = policy.generation_config
    eos_ids = eos_token_ids(policy, tokenizer)
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

    # As plain Modules: transformers wraps ``to`` with functools.wraps, whose stub leaves ``self`` unbound.
    models: tuple[torch.nn.Module | None, ...] = (policy, reference, value, reward)
    for model in models:
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


def _rollout(m: _Models, prompts: Sequence[list[dict]], params: PPOParams, logprobs: bool = True) -> dict:
    """Sample one response per prompt; responses are padded after their first EOS.

    With ``logprobs``, the log-probabilities of the sampled tokens come from the logits
    ``generate`` computed anyway, at the sampling temperature: the rollout needs no
    second forward pass of the policy.
    """
    query, query_mask = _encode_prompts(m.tokenizer, prompts, params.max_prompt_length, m.pad_id, m.device)
    m.generation_config.output_logits = logprobs
    output = m.policy.generate(input_ids=query, attention_mask=query_mask, generation_config=m.generation_config)
    response = output.sequences[:, query.shape[1] :]
    mask = response_mask_after_eos(response, m.eos_ids, m.pad_id)
    width = max(1, int(mask.sum(1).max()))
    response, mask = response[:, :width].masked_fill(~mask[:, :width], m.pad_id), mask[:, :width]
    is_eos = torch.isin(response, torch.tensor(m.eos_ids, device=m.device)) & mask
    texts = [  # one row decodes to one string (decode's stub also allows a batch's list)
        cast(str, m.tokenizer.decode(row[keep & ~eos], skip_special_tokens=True)).strip()
        for row, keep, eos in zip(response, mask, is_eos, strict=True)
    ]
    batch = {
        "query": query,
        "query_mask": query_mask,
        "response": response,
        "mask": mask,
        "texts": texts,
        "has_eos": is_eos.any(1),
    }
    if logprobs:
        logits = torch.stack(output.logits[:width], 1) / params.temperature
        batch["logprobs"] = selective_log_softmax(logits, response) * mask
    return batch


def _experience(m: _Models, prompts: Sequence[list[dict]], params: PPOParams) -> dict:
    """A rollout plus its old log-probs, values, scores, per-token rewards and advantages."""
    batch = _rollout(m, prompts, params)
    query, response, mask = batch["query"], batch["response"], batch["mask"]
    context = query.shape[1]
    input_ids = torch.cat([query, response], 1)
    attention_mask = torch.cat([batch["query_mask"], mask.long()], 1)
    chunk = max(1, params.mini_batch_size)
    ref_logprobs, values = [], []
    for rows in torch.arange(len(prompts), device=m.device).split(chunk):
        ids, attn = input_ids[rows], attention_mask[rows]
        if m.reference is None:
            with m.policy.disable_adapter():
                ref_logits = _response_logits(m.policy, ids, attn, context, params.temperature)
        else:
            ref_logits = _response_logits(m.reference, ids, attn, context, params.temperature)
        ref_logprobs.append(selective_log_softmax(ref_logits, response[rows]))
        values.append(token_scores(m.value, ids, attn)[:, context - 1 : -1])
    fmask = mask.to(torch.float32)
    logprobs, ref_logprobs = batch["logprobs"], torch.cat(ref_logprobs) * fmask
    values = torch.cat(values) * fmask

    raw_scores = _score_responses(m, prompts, batch["texts"], chunk)
    scores = raw_scores.clone()
    if params.missing_eos_penalty is not None:
        scores[~batch["has_eos"]] -= params.missing_eos_penalty
    # The KL penalty is paid on every token, the score only on the last one; GAE and the
    # value model spread the score back over the tokens that earned it.
    rewards = -params.beta * (logprobs - ref_logprobs)
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
            optimizer.zero_grad(set_to_none=True)
            # Micro-batches of one minibatch: the same step with a smaller forward pass.
            micro = idx.tensor_split(min(len(idx), params.gradient_accumulation_steps))
            for part in micro:
                ids, attn, mb_mask = exp["input_ids"][part], exp["attention_mask"][part], mask[part]
                logits = _response_logits(m.policy, ids, attn, context, params.temperature)
                logprobs = selective_log_softmax(logits, exp["response"][part])
                values = token_scores(m.value, ids, attn)[:, context - 1 : -1]
                pg_loss, clipfrac = policy_loss(
                    logprobs, exp["logprobs"][part], exp["advantages"][part], mb_mask, params.cliprange
                )
                vf_loss, vf_clipfrac = value_loss(
                    values, exp["values"][part], exp["returns"][part], mb_mask, params.cliprange_value
                )
                ((pg_loss + params.vf_coef * vf_loss) / len(micro)).backward()
                with torch.no_grad():
                    entropy = masked_mean(entropy_from_logits(logits), mb_mask)
                for key, value in zip(stats, (pg_loss, vf_loss, entropy, clipfrac, vf_clipfrac), strict=True):
                    stats[key].append(float(value.detach()))
            # Clipped apart: the value gradient is on another scale and must not use up
            # the policy's share of a joint norm budget.
            torch.nn.utils.clip_grad_norm_(policy_params, params.max_grad_norm)
            torch.nn.utils.clip_grad_norm_(value_params, params.max_grad_norm)
            optimizer.step()
        epoch = stats["value_loss"][epoch_start:]
        epoch_value_loss.append(sum(epoch) / len(epoch))
    return {
        **{key: sum(values) / len(values) for key, values in stats.items()},
        "value_loss_first_epoch": epoch_value_loss[0],
        "value_loss_last_epoch": epoch_value_loss[-1],
    }


def _evaluate(m: _Models, prompts: list[list[dict]], params: PPOParams) -> tuple[float, float]:
    """Mean raw score and response length on the evaluation prompts, with its own seed.

    The RNG is forked so evaluating does not change the training samples: a run with
    evaluation every N updates trains exactly like one without.
    """
    scores, lengths = [], []
    devices = [m.device] if m.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(params.seed + 1)
        for start in range(0, len(prompts), params.batch_size):
            part = prompts[start : start + params.batch_size]
            batch = _rollout(m, part, params, logprobs=False)
            chunk = max(1, params.mini_batch_size)
            scores.append(_score_responses(m, part, batch["texts"], chunk))
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

    ``on_log`` receives one dict every ``logging_steps`` updates (and on evaluation steps
    and the last): ``step, policy_loss, value_loss, score``
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
        fused=m.device.type in ("cpu", "cuda"),  # one kernel per step instead of one per tensor: ~4x on CPU
    )
    total = max(1, params.steps)
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
    for step in range(1, params.steps + 1):
        if should_stop and should_stop():
            raise TrainingStopped(f"PPO stopped on request after {step - 1} of {params.steps} updates")
        update_started = time.monotonic()
        batch_prompts: list[list[dict]] = []
        while len(batch_prompts) < params.batch_size:
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
        if eval_prompts and (step == params.steps or (params.eval_every and step % params.eval_every == 0)):
            eval_after, record["eval_response_length"] = _evaluate(m, eval_prompts, params)
            record["eval_score"] = eval_after
        history.append(record)
        if on_log and (step % params.logging_steps == 0 or step == params.steps or "eval_score" in record):
            on_log(record)

    if should_stop and should_stop():
        raise TrainingStopped(f"PPO stopped on request after {params.steps} updates, before saving")
    # A LoRA run saves its adapter only (PEFT's format); the worker names its base checkpoint.
    # The sampling config used for training stays out of the checkpoint: serving keeps
    # the defaults the model came with.
    (m.policy.get_base_model() if params.use_lora else m.policy).generation_config = m.saved_generation_config
    m.policy.save_pretrained(output_dir)
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
