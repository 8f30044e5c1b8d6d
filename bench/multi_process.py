"""DPO training throughput in one process and in two (``num_processes=2``), the same global batch.

Both runs go the worker's way (``execute_run``: a trainer process, or ``accelerate launch``
over two ranks that meet over gloo on a CPU) on the same votes, seed and steps; the
one-process run takes ``batch_size=2B``, the two-process run ``B`` per rank. Throughput is
read from the run's own progress lines, from the first logged step to the last, so start-up
(imports, model load, tokenising) is left out; the wall clock of each run is printed beside
it. Every process gets ``--threads`` torch threads (``OMP_NUM_THREADS``, default 1): one
process uses one core, two use two, as one rank per GPU would. Left alone, the one-process
run would take a thread per core while torchrun gives each rank one, and on a shared CPU
the thread count alone moves a small model's speed several-fold.

    .venv/bin/python bench/multi_process.py [--steps 40 --batch 4 --pairs 64 --repeats 2 --threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The repository first, so the trainer (``python -m``, from the working directory) imports this tree.
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)


def make_world(data_dir: Path, pairs: int):
    """A fresh database under ``data_dir`` with the tiny model and ``pairs`` votes of a `contains:please` rater."""
    os.environ["RLHF_DATA_DIR"] = str(data_dir)
    os.environ.pop("RLHF_DATABASE_URL", None)
    os.environ["RLHF_BROKER_URL"] = ""
    from rlhf import db
    from rlhf.modeling.tiny import build_tiny_model
    from rlhf.models import Response
    from rlhf.services.checkpoints import register_checkpoint
    from rlhf.services.comparisons import open_comparison
    from rlhf.services.prompts import PromptRecord, import_records
    from rlhf.services.simulate import simulate
    from rlhf.settings import get_settings, reset_settings_cache

    reset_settings_cache()
    settings = get_settings()
    db.migrate(settings.database_url)
    engine = db.get_engine(settings.database_url)
    tiny = build_tiny_model(data_dir / "tiny")
    with db.session_scope(engine) as s:
        ck = register_checkpoint(session=s, path=str(tiny), name="tiny", serve=True)
        records = [PromptRecord(messages=[{"role": "user", "content": f"Question number {i}?"}]) for i in range(pairs)]
        for i, pid in enumerate(import_records(session=s, records=records).ids):
            a = Response(prompt_id=pid, checkpoint_id=ck.id, text=f"Sure, please see answer {i}. It is a fine answer.")
            b = Response(prompt_id=pid, checkpoint_id=ck.id, text=f"See answer {i}. It is an answer.")
            s.add_all([a, b])
            s.flush()
            open_comparison(session=s, prompt_id=pid, response_a_id=a.id, response_b_id=b.id)
        simulate(session=s, rule="contains:please")
    return settings, engine


def one_run(settings, engine, processes: int, batch: int, steps: int) -> dict:
    """Train once; samples/s and tokens/s between the first and the last logged step, and the wall clock."""
    from rlhf import db
    from rlhf.jobs.training import execute_run, run_dir
    from rlhf.models import JobStatus
    from rlhf.services.runs import create_run, get_run

    params = {"steps": steps, "batch_size": batch // processes, "num_processes": processes}
    with db.session_scope(engine) as s:
        run = create_run(session=s, algorithm="dpo", params={**params, "seed": 0, "eval_samples": 0})
    start = time.perf_counter()
    status = execute_run(run.id, settings)
    wall = time.perf_counter() - start
    if status is not JobStatus.succeeded:
        with db.session_scope(engine) as s:
            sys.exit(f"run {run.id} ({processes} processes) {status}: {get_run(session=s, run_id=run.id).error}")
    lines = [json.loads(x) for x in (run_dir(settings, run.id) / "progress.jsonl").read_text().splitlines()]
    lines = [x for x in lines if "loss" in x]
    first, last = lines[0], lines[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    with db.session_scope(engine) as s:
        ranks = get_run(session=s, run_id=run.id).metrics["processes"]
    return {
        "ranks": ranks,
        "samples_s": (last["step"] - first["step"]) * batch / seconds,
        "tokens_s": (last["num_tokens"] - first["num_tokens"]) / seconds,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4, help="global batch: 1 process x batch, or 2 x batch/2")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    args = ap.parse_args()
    if args.batch % 2:
        sys.exit("--batch must be even: two ranks take half each")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by each trainer process, and passed on by torchrun
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rlhf-bench-mp-") as tmp:
        settings, engine = make_world(Path(tmp), args.pairs)
        results: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            for n in (1, 2):
                results[n].append(one_run(settings, engine, n, args.batch, args.steps))
        engine.dispose()
    print(
        f"DPO on the tiny model: {args.pairs} pairs, {args.steps} steps, global batch {args.batch}, "
        f"{args.repeats} repeats; {args.threads} thread(s) per process, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at start"
    )
    median = {}
    for n, runs in results.items():
        assert all(r["ranks"] == n for r in runs), runs  # the run says how many ranks trained
        median[n] = {k: statistics.median(r[k] for r in runs) for k in ("samples_s", "tokens_s", "wall_s")}
        each = ", ".join(f"{r['samples_s']:.1f}" for r in runs)
        print(
            f"{n} process{'es' if n > 1 else '  '}: {median[n]['samples_s']:6.1f} samples/s "
            f"{median[n]['tokens_s']:8.0f} tokens/s  (runs: {each} samples/s; wall {median[n]['wall_s']:.1f} s)"
        )
    print(f"ratio 2/1  : {median[2]['samples_s'] / median[1]['samples_s']:6.2f}")
    print(
        "On GPUs each rank has a device of its own, so two processes can approach twice the samples/s "
        "when a step's compute outweighs the all-reduce of the gradients; this CPU measures the overhead only."
    )


if __name__ == "__main__":
    main()
