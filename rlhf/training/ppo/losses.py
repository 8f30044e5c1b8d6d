"""PPO's loss arithmetic as small pure tensor functions, so tests can check each by hand.

GAE over each response, the clipped policy and value losses, a KL estimate, and the
masks and whitening that keep padding out of every mean.
"""

from __future__ import annotations

from collections.abc import Collection

import torch


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
