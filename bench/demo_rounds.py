"""The demo's headless round over several seeds: how often the marker word appears before and after.

Each seed gets a fresh data dir (the tiny model is built once and copied in), runs exactly
what ``rlhf demo --rounds 1`` runs, with the DPO run seeded, and prints the marker word's
share of the 256 held-out samples before and after. CPU results also vary with the number
of torch threads, which is printed.

    python bench/demo_rounds.py [--seeds 0,1,2] [--word please]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--word", default="please")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from rlhf import db
    from rlhf.modeling.tiny import build_tiny_model
    from rlhf_cli import demo

    print(f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="rlhf-demo-rounds-") as tmp:
        tiny = build_tiny_model(Path(tmp) / "tiny")
        for seed in (int(s) for s in args.seeds.split(",")):
            data_dir = Path(tmp) / f"seed{seed}"
            shutil.copytree(tiny, data_dir / "checkpoints" / "tiny-base")
            demo._use_data_dir(str(data_dir))
            from rlhf.modeling.tiny import PROMPTS_PATH, resolve_base_model
            from rlhf.services.checkpoints import register_checkpoint
            from rlhf.services.prompts import import_file
            from rlhf.settings import get_settings

            settings = get_settings()
            db.migrate(settings.database_url)
            engine = db.get_engine(settings.database_url)
            with db.session_scope(engine) as s:
                register_checkpoint(
                    session=s, path=resolve_base_model("tiny", settings.checkpoints_dir), name="base", serve=True
                )
                import_file(session=s, path=PROMPTS_PATH, tags=["demo"])
            before, after = demo._headless_round(engine, settings, 1, args.word, seed=seed)
            results.append((seed, before, after))
            engine.dispose()
    print()
    for seed, before, after in results:
        print(f"seed {seed}: '{args.word}' in {before:.0%} before, {after:.0%} after")
    afters = [a for _, _, a in results]
    print(
        f"after one round: {min(afters):.0%}–{max(afters):.0%} over {len(results)} seeds (before: {results[0][1]:.0%})"
    )


if __name__ == "__main__":
    main()
