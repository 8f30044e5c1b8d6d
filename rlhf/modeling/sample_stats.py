"""What a policy's samples look like on held-out prompts: marker-word rate, length, share finished.

Used to measure what a round did to a policy, so with enough samples to trust.

Few samples mislead: 64 samples moved a mean length by ±20 % between two runs of the
same model, so the defaults are 16 prompts × 16 samples, seeded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
from rlhf.modeling.tiny import HELDOUT_PROMPTS_PATH


@dataclass
class PolicyEval:
    samples: int
    marker_rate: float | None
    mean_chars: float
    finished_rate: float


def evaluate_policy(
    path, prompts: list[list[dict]], *, word: str | None = None, n: int = 16, seed: int = 1234, max_new_tokens: int = 64
) -> PolicyEval:
    out = sample_checkpoint(path, prompts, n=n, params=SamplingParams(seed=seed, max_new_tokens=max_new_tokens))
    texts = [s for per_prompt in out for s in per_prompt]
    pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE) if word else None
    return PolicyEval(
        samples=len(texts),
        marker_rate=(sum(bool(pattern.search(s.text)) for s in texts) / len(texts)) if pattern else None,
        mean_chars=sum(len(s.text) for s in texts) / len(texts),
        finished_rate=sum(s.finished for s in texts) / len(texts),
    )


def heldout_prompts(limit: int = 16) -> list[list[dict]]:
    """The bundled held-out prompts (``{"prompt": text}`` lines of our own file), as conversations."""
    lines = HELDOUT_PROMPTS_PATH.read_text(encoding="utf-8").splitlines()
    return [[{"role": "user", "content": json.loads(line)["prompt"]}] for line in lines if line.strip()][:limit]
