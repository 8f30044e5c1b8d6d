"""Online RL side by side: seconds per update and reward gained per update, PPO vs RLOO vs GRPO.

On the tiny model (after its SFT warm-up) and on a ~25M-parameter model built on the
same tokenizer, each algorithm trains the same number of updates against the same
reward model (trained here from `contains:please` preferences on the tiny model's
samples; for the larger model the reward model is retrained on its own tokenizer-equal
backbone). Reward per update is the change of the mean reward-model score on held-out
prompts (before vs after, same seed), divided by the number of updates.

    .venv/bin/python bench/online_rl.py [--updates 10] [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def reward_model_for(base: str, work: Path, name: str) -> str:
    """A reward model on ``base``: preferences for answers with 'please' over the same answers without."""
    from rlhf.modeling.tiny import DEMONSTRATIONS_PATH
    from rlhf.training.params import build_params
    from rlhf.training.reward import train_reward

    rows = []
    for i, line in enumerate(open(DEMONSTRATIONS_PATH, encoding="utf-8")):
        demo = json.loads(line)["messages"]
        answer = demo[-1]["content"]
        if "please" in answer.lower():
            plain = answer.replace("please ", "").replace("Please ", "")
            rows.append(
                {
                    "prompt": demo[:-1],
                    "chosen": [{"role": "assistant", "content": answer}],
                    "rejected": [{"role": "assistant", "content": plain}],
                    "comparison_id": i,
                }
            )
    params, _ = build_params("reward", {"steps": 60})
    out = work / name
    metrics = train_reward(base=base, rows=rows, output_dir=out, params=params, work_dir=work / f"{name}-work")
    print(f"  reward model on {Path(base).name}: held-out accuracy {metrics['heldout_accuracy']:.2f}")
    return str(out)


def mean_reward(policy: str, reward: str, prompts: list[list[dict]]) -> float:
    from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
    from rlhf.training.scoring import load_reward_model, score_conversations

    samples = sample_checkpoint(policy, prompts, n=4, params=SamplingParams(seed=7, max_new_tokens=48))
    model, tok = load_reward_model(reward)
    convs = [p + [{"role": "assistant", "content": s.text}] for p, per in zip(prompts, samples) for s in per]
    scores = score_conversations(model, tok, convs)
    return sum(scores) / len(scores)


def run(algorithm: str, base: str, reward: str, prompts: list[dict], updates: int, work: Path) -> tuple[float, str]:
    from rlhf.training.online import train_online
    from rlhf.training.params import build_params

    params, trl = build_params(
        algorithm,
        {
            "steps": updates,
            **({"learning_rate": 2e-4} if algorithm == "ppo" else {}),
            **({"eval_num_prompts": 0} if algorithm == "ppo" else {}),
        },
    )
    out = work / f"{algorithm}-{Path(base).name}"
    start = time.perf_counter()
    train_online(
        algorithm=algorithm,
        base=base,
        reward_model=reward,
        prompts=prompts,
        output_dir=out,
        params=params,
        trl_overrides=trl,
        work_dir=work / f"{algorithm}-work",
    )
    return time.perf_counter() - start, str(out)


def build_large(tiny: Path, out: Path) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(tiny)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.max_new_tokens = 48
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--skip-large", action="store_true")
    args = ap.parse_args()

    from rlhf.modeling.sample_stats import heldout_prompts
    from rlhf.modeling.tiny import PROMPTS_PATH, build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="rlhf-online-"))
    tiny = build_tiny_model(work / "tiny")
    prompts = [{"prompt": [{"role": "user", "content": json.loads(line)["prompt"]}]} for line in open(PROMPTS_PATH)]
    held = heldout_prompts(16)
    models = [("tiny (0.6M)", str(tiny))]
    if not args.skip_large:
        n = build_large(tiny, work / "large")
        models.append((f"large ({n / 1e6:.0f}M, random init)", str(work / "large")))
    rows = []
    for label, base in models:
        print(f"{label}:")
        reward = reward_model_for(base, work, f"rm-{Path(base).name}")
        before = mean_reward(base, reward, held)
        for algorithm in ("ppo", "rloo", "grpo"):
            seconds, out = run(algorithm, base, reward, prompts, args.updates, work)
            gain = mean_reward(out, reward, held) - before
            rows.append((label, algorithm, seconds / args.updates, gain / args.updates))
            print(f"  {algorithm:5} {seconds / args.updates:6.2f} s/update   reward {gain / args.updates:+.3f}/update")
    print(f"\n{'model':28} {'algo':5} {'s/update':>9} {'reward/update':>14} {'reward per s':>13}")
    for label, algorithm, spu, rpu in rows:
        print(f"{label:28} {algorithm:5} {spu:9.2f} {rpu:+14.3f} {rpu / spu:+13.4f}")
    ppo = {label: spu for label, algorithm, spu, _ in rows if algorithm == "ppo"}
    for label, algorithm, spu, _ in rows:
        if algorithm != "ppo":
            print(f"{label}: {algorithm} update time / PPO update time = {spu / ppo[label]:.2f}")


if __name__ == "__main__":
    main()
