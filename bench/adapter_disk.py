"""Disk per round: what a LoRA DPO round stores (its adapter) against a full round (every weight).

On the tiny model and on a ~35M-parameter Llama built on its tokenizer (the one
``bench/ppo_vs_trl.py`` measures PPO on), one short DPO round of each kind from the same
base, in fp32, with the LoRA defaults (r=16, all linear layers). Sizes are the checkpoint
folders as the trainer saves them (weights, configs, tokenizer).

    .venv/bin/python bench/adapter_disk.py [--work DIR] [--quick]

``--quick``: the tiny model only. One line per model:
``MODEL: full X MB, LoRA adapter Y MB, ratio Z %``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

ROWS = [
    {
        "prompt": [{"role": "user", "content": f"Question {i}?"}],
        "chosen": [{"role": "assistant", "content": "Yes, please."}],
        "rejected": [{"role": "assistant", "content": "No."}],
    }
    for i in range(8)
]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def one_round(base: Path, out: Path, peft: str) -> int:
    from rlhf.training.dpo import train_dpo
    from rlhf.training.params import build_params

    params, _ = build_params("dpo", {"steps": 1, "batch_size": 2, "max_length": 64, "peft": peft})
    train_dpo(base=str(base), rows=ROWS, output_dir=out, params=params, work_dir=out.with_suffix(".work"))
    return folder_bytes(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="keep the models here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="the tiny model only")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="adapter-disk-"))
    work.mkdir(parents=True, exist_ok=True)
    from rlhf.modeling.tiny import build_tiny_model

    tiny = work / "tiny"
    if not (tiny / "config.json").is_file():
        build_tiny_model(tiny)
    models = {"tiny": tiny}
    if not args.quick:
        from ppo_vs_trl import build_large

        large = work / "large-35M"
        if not (large / "config.json").is_file():
            build_large(tiny, large)
        models["~35M"] = large
    lines = []
    for name, base in models.items():
        full = one_round(base, work / f"{name}-full", "none")
        lora = one_round(base, work / f"{name}-lora", "lora")
        lines.append(
            f"{name}: full {full / 1e6:.2f} MB, LoRA adapter {lora / 1e6:.2f} MB, ratio {100 * lora / full:.1f} %"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
