"""A new policy compared with its parent right after training, on held-out prompts.

For a new policy against its parent: mean response length (tokens), a KL estimate to the
parent (mean over the new policy's samples of log p_new(y) − log p_parent(y), summed
over the response), and, when a reward model is at hand, the mean reward-model score of
both. Held-out prompts are never trained on by online RL.
"""

from __future__ import annotations

from typing import Any

from rlhf.modeling.adapters import load_causal_lm
from rlhf.modeling.sampling import SamplingParams, generate, load_policy, render_prompts
from rlhf.training.scoring import load_reward_model, score_conversations


def _sequence_logprobs(model, input_ids, attention_mask, start: int):
    import torch

    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, start - 1 : -1].float()
    targets = input_ids[:, start:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logp * attention_mask[:, start:]).sum(-1)


def compare_with_parent(
    *,
    policy_path,
    parent_path: str,
    prompts: list[list[dict]],
    reward_model_path: str | None = None,
    samples_per_prompt: int = 4,
    seed: int = 1234,
    max_new_tokens: int = 48,
) -> dict[str, Any]:
    import torch

    if not prompts or samples_per_prompt < 1:
        return {}
    policy, tok = load_policy(policy_path)
    parent = load_causal_lm(parent_path).eval()
    params = SamplingParams(seed=seed, max_new_tokens=max_new_tokens)
    samples = generate(policy, tok, prompts, n=samples_per_prompt, params=params)
    parent_samples = generate(parent, tok, prompts, n=samples_per_prompt, params=params) if reward_model_path else None
    encoded = render_prompts(tok, prompts, params.max_prompt_tokens)
    kls, lengths = [], []
    for ids, per_prompt in zip(encoded, samples):
        for s in per_prompt:
            resp = tok(s.text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if s.finished else [])
            if not resp:
                continue
            seq = torch.tensor([ids + resp])
            mask = torch.ones_like(seq)
            kls.append(
                float(_sequence_logprobs(policy, seq, mask, len(ids)) - _sequence_logprobs(parent, seq, mask, len(ids)))
            )
            lengths.append(len(resp))
    out: dict[str, Any] = {
        "eval/prompts": len(prompts),
        "eval/samples": sum(len(p) for p in samples),
        "eval/kl_to_parent": sum(kls) / len(kls) if kls else None,
        "eval/response_tokens": sum(lengths) / len(lengths) if lengths else None,
    }
    if reward_model_path:
        rm, rtok = load_reward_model(reward_model_path)

        def mean_score(all_samples):
            convs = [
                p + [{"role": "assistant", "content": s.text}] for p, per in zip(prompts, all_samples) for s in per
            ]
            scores = score_conversations(rm, rtok, convs)
            return sum(scores) / len(scores)

        out["eval/reward"] = mean_score(samples)
        out["eval/reward_parent"] = mean_score(parent_samples)
        out["eval/reward_gain"] = out["eval/reward"] - out["eval/reward_parent"]
    return out
