"""What the loop costs on top of TRL: the same DPO run via `rlhf train dpo --wait` and via a bare script.

Both start from the same saved model and train on the same votes (the bare script on the
exported file) with the same steps, batch, learning rate, loss and seed, and both save
the result. The `rlhf` figure includes everything a user waits for: CLI start-up, the
data snapshot, the trainer process, progress reporting, the atomic save and the
checkpoint's registration. The evaluation `rlhf` runs after training is switched off
(`eval_samples=0`): the bare script has none, and it is a feature, not overhead.

    .venv/bin/python bench/train_overhead.py [--hidden 512 --layers 8 --steps 30 --repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_model(tiny_dir: Path, out: Path, hidden: int, layers: int) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def make_votes(env: dict, pairs: int) -> None:
    """Comparisons with and without a marker word, voted by the simulated rater (not timed)."""
    code = f"""
from rlhf import db
from rlhf.models import Response
from rlhf.services.checkpoints import serving_checkpoints
from rlhf.services.comparisons import open_comparison
from rlhf.services.prompts import PromptRecord, import_records
from rlhf.settings import get_settings
with db.session_scope(db.engine_from_settings()) as s:
    ck = serving_checkpoints(session=s)[0]
    records = [PromptRecord(messages=[{{"role": "user", "content": f"Question number {{i}}?"}}])
               for i in range({pairs})]
    ids = import_records(session=s, records=records).ids
    for i, pid in enumerate(ids):
        a = Response(prompt_id=pid, checkpoint_id=ck.id, text=f"Sure, please see answer {{i}}. It is a fine answer.")
        b = Response(prompt_id=pid, checkpoint_id=ck.id, text=f"See answer {{i}}. It is an answer.")
        s.add_all([a, b]); s.flush()
        open_comparison(session=s, prompt_id=pid, response_a_id=a.id, response_b_id=b.id)
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    subprocess.run(
        [sys.executable, "-m", "rlhf_cli.main", "simulate", "--rule", "contains:please"],
        env=env,
        check=True,
        capture_output=True,
    )


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rlhf-bench-"))
    from rlhf.modeling.tiny import build_tiny_model

    tiny = build_tiny_model(work / "tiny")
    n_params = build_model(tiny, work / "model", args.hidden, args.layers)
    env = {
        **os.environ,
        "RLHF_DATA_DIR": str(work / "data"),
        "RLHF_BASE_MODEL": str(work / "model"),
        "RLHF_BROKER_URL": "",
        "PYTHONPATH": str(ROOT),
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("RLHF_DATABASE_URL", None)
    rlhf = [sys.executable, "-m", "rlhf_cli.main"]
    subprocess.run(rlhf + ["init"], env=env, check=True, capture_output=True)
    make_votes(env, args.pairs)
    subprocess.run(rlhf + ["export", str(work / "prefs.jsonl")], env=env, check=True, capture_output=True)

    ours, bare = [], []
    for i in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        ours.append(
            timed(
                rlhf
                + [
                    "train",
                    "dpo",
                    "--wait",
                    "--steps",
                    str(args.steps),
                    "--set",
                    f"batch_size={args.batch_size}",
                    "--set",
                    "seed=0",
                    "--set",
                    "eval_samples=0",
                ],
                env,
            )
        )
        bare.append(
            timed(
                [
                    sys.executable,
                    str(ROOT / "bench" / "bare_dpo.py"),
                    "--model",
                    str(work / "model"),
                    "--data",
                    str(work / "prefs.jsonl"),
                    "--out",
                    str(work / f"bare-{i}"),
                    "--steps",
                    str(args.steps),
                    "--batch-size",
                    str(args.batch_size),
                ],
                env,
            )
        )
    o, b = statistics.median(ours), statistics.median(bare)
    print(
        f"model: {n_params / 1e6:.1f}M parameters (hidden {args.hidden}, {args.layers} layers); "
        f"{args.pairs} pairs, {args.steps} steps, batch {args.batch_size}, {args.repeats} repeats"
    )
    print(f"rlhf train dpo --wait : {o:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in ours)})")
    print(f"bare TRL script       : {b:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in bare)})")
    print(f"ratio                 : {o / b:7.3f}  (goal <= 1.10)")


if __name__ == "__main__":
    main()
