"""A generation job's sampling through the inference engine instead of inside the worker.

Every (prompt, sample) is its own request, sent concurrently (at most
``RLHF_INFERENCE_CONCURRENCY`` in flight): a GPU engine batches them itself. Seeds are
derived from the job's seed per prompt and sample, so a job is reproducible on an engine
that honours ``seed``. The result has the shape :func:`rlhf.modeling.sampling.sample_checkpoint`
returns, so the job stores responses with the same parameters either way.
"""

from __future__ import annotations

import asyncio
import dataclasses

from rlhf.inference.client import ChatSampling, Inference, run_async
from rlhf.modeling.sampling import Sample, SamplingParams, clean_text

# A generation request may be long (hundreds of tokens on a busy engine): far longer than an arena answer.
JOB_REQUEST_TIMEOUT_S = 600.0


def sample_through_engine(
    inference: Inference, model: str, prompts: list[list[dict]], n: int, params: SamplingParams, concurrency: int = 16
) -> list[list[Sample]]:
    """``n`` samples per prompt from ``model`` on the engine (blocking; runs its own event loop)."""
    inference = dataclasses.replace(inference, timeout_s=JOB_REQUEST_TIMEOUT_S)

    async def main() -> list[list[Sample]]:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, k: int) -> Sample:
            sampling = ChatSampling(
                max_new_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed * 100_003 + i * n + k,
            )
            async with gate:
                answer = await inference.complete(model, prompts[i], sampling)
            return Sample(clean_text(answer.text), answer.finished)

        samples = await asyncio.gather(*(one(i, k) for i in range(len(prompts)) for k in range(n)))
        return [list(samples[i * n : (i + 1) * n]) for i in range(len(prompts))]

    return run_async(main)
