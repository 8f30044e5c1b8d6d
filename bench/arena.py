"""Arena and generation-job throughput on the embedded engine (``transformers serve`` on the tiny model).

1. Battles: 1, 4 and 16 concurrent battles (two answers each, from two checkpoints), each
   answer timed from the request: time to first token (TTFT) and tokens/s after it.
2. Generation jobs: the same prompts sampled by the in-worker path (one model load,
   batched ``generate``) and through the engine (one request per sample, concurrent),
   in the same run; tokens/s of each and their ratio. Tokens are counted with the
   checkpoint's tokenizer on the texts, the same way for both.

What the embedded engine does not do: it serves one request at a time per model (a
sequential ``generate`` thread per checkpoint), so concurrency here only queues; batching
concurrent requests is what vLLM or SGLang on a GPU are for. Prints figures; asserts nothing.

    python bench/arena.py [--prompts 32] [--max-new-tokens 64] [--concurrency 1,4,16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rlhf.inference.battle import PairStream
from rlhf.inference.client import ChatSampling, Inference
from rlhf.inference.engine import ManagedEngine
from rlhf.inference.generate import sample_through_engine
from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
from rlhf.modeling.tiny import build_tiny_model

PROMPTS = Path(__file__).resolve().parents[1] / "rlhf" / "data" / "prompts.jsonl"


class Side:
    def __init__(self, model: str, seed: int, max_new_tokens: int):
        self.model, self.sampling = model, ChatSampling(max_new_tokens=max_new_tokens, seed=seed)


async def timed_battle(inference: Inference, models: list[str], messages: list[dict], seed: int, max_new: int):
    pair = PairStream(
        inference, messages, {"a": Side(models[0], seed, max_new), "b": Side(models[1], seed + 1, max_new)}, 600.0
    )
    start = time.perf_counter()
    first: dict[str, float] = {}
    async for side, _ in pair.events():
        first.setdefault(side, time.perf_counter() - start)
    end = time.perf_counter() - start
    out = []
    for side in ("a", "b"):
        tokens = pair.states[side].tokens or pair.states[side].deltas
        # An answer's own end is not reported apart from the pair's; the pair's end bounds it.
        out.append((first.get(side, end), tokens / max(end - first.get(side, end), 1e-6)))
    return out


async def battles(inference: Inference, models: list[str], prompts: list[str], concurrency: int, max_new: int):
    rounds = max(1, 16 // concurrency)  # the same number of battles at every level where possible
    results = []
    for r in range(rounds):
        batch = [
            timed_battle(
                inference,
                models,
                [{"role": "user", "content": prompts[(r * concurrency + i) % len(prompts)]}],
                1000 + r * concurrency + i,
                max_new,
            )
            for i in range(concurrency)
        ]
        for pair in await asyncio.gather(*batch):
            results.extend(pair)
    return results


def count_tokens(tokenizer, samples) -> int:
    return sum(len(tokenizer(s.text, add_special_tokens=False)["input_ids"]) for row in samples for s in row)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,4,16")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-arena-"))
    try:
        base = build_tiny_model(work / "tiny")
        models = [str(base), str(work / "tiny-b")]
        shutil.copytree(base, models[1])
        prompts = [json.loads(line)["prompt"] for line in PROMPTS.read_text().splitlines()][: args.prompts]
        engine = ManagedEngine(log_path=work / "inference.log")
        t0 = time.perf_counter()
        engine.ensure()
        engine.preload(models)
        print(f"embedded engine up and both checkpoints loaded in {time.perf_counter() - t0:.1f} s")
        inference = Inference(engine=engine, timeout_s=600.0)
        print("\nbattles (two answers each, two checkpoints), per answer:")
        print(f"{'concurrent':>10} {'answers':>8} {'TTFT p50 s':>11} {'TTFT p95 s':>11} {'tok/s p50':>10}")
        for c in [int(x) for x in args.concurrency.split(",")]:
            rows = asyncio.run(battles(inference, models, prompts, c, args.max_new_tokens))
            ttft = sorted(r[0] for r in rows)
            rate = [r[1] for r in rows]
            print(
                f"{c:>10} {len(rows):>8} {statistics.median(ttft):>11.3f} "
                f"{ttft[int(0.95 * (len(ttft) - 1))]:>11.3f} {statistics.median(rate):>10.1f}"
            )

        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
        messages = [[{"role": "user", "content": p}] for p in prompts]
        params = SamplingParams(max_new_tokens=args.max_new_tokens, seed=7)
        t0 = time.perf_counter()
        worker = sample_checkpoint(str(base), messages, n=2, params=params)
        worker_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        through = sample_through_engine(inference, str(base), messages, n=2, params=params, concurrency=16)
        engine_s = time.perf_counter() - t0
        w_rate, e_rate = count_tokens(tokenizer, worker) / worker_s, count_tokens(tokenizer, through) / engine_s
        print(f"\ngeneration job, {len(prompts)} prompts x 2 samples, max {args.max_new_tokens} new tokens:")
        print(f"  in-worker (load + batched generate): {w_rate:8.1f} tok/s ({worker_s:.2f} s)")
        print(f"  through the engine (16 concurrent):  {e_rate:8.1f} tok/s ({engine_s:.2f} s)")
        print(f"  engine / in-worker: {e_rate / w_rate:.2f}x")
        engine.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
