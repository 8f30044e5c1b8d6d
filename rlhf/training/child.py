"""The trainer process: ``python -m rlhf.training.child SPEC.json``.

A run trains in its own process so that an exception, an out-of-memory kill or a CUDA
fault fails the run and never the worker, memory is returned when it ends, and
``accelerate launch`` can start the very same entry point on several GPUs. It knows
nothing of the database: it reads a :class:`~rlhf.training.spec.TrainerSpec`, appends
progress lines (:class:`~rlhf.training.progress.RunProgress`) to a file the worker tails,
and writes ``result.json`` last; no result file means the run failed.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rlhf.dataset_rows import read_preference_rows
from rlhf.modeling.adapters import ModelRef, adapter_kind, merge_into
from rlhf.training import parent_comparison  # looked up at call time, so a test can stand in for it
from rlhf.training.progress import RunProgress
from rlhf.training.spec import TrainerSpec, read_jsonl


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _launched_ranks() -> int:
    """How many ranks ``accelerate launch`` started (1 when the worker ran this process directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _die_with_launcher() -> None:  # pragma: no cover - runs under accelerate launch only
    """torchrun starts each rank in a session of its own, out of reach of the worker's kill of the
    launcher's process group: a rank must not train on as an orphan once its launcher is gone."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() == 1:  # the launcher died before the line above took effect
        os._exit(1)


def _trained_ranks() -> int:
    """The size of the process group that trained: a run that fell back to one process shows 1."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def run(spec: TrainerSpec) -> dict[str, Any]:
    from transformers import set_seed

    from rlhf.training.trl_setup import ProgressCallback  # heavy: loads torch and transformers

    params, trl_overrides = spec.typed_params()
    set_seed(params.seed)
    make_merged_copies(spec)
    progress_path = Path(spec.progress)
    stop_path = Path(spec.stop)

    def on_log(step: int, values: dict[str, Any]) -> None:
        if _is_main_process():
            with progress_path.open("a", encoding="utf-8") as fh:
                fh.write(RunProgress.logged(step, values).to_json() + "\n")

    def should_stop() -> bool:
        return stop_path.exists()

    callback = ProgressCallback(on_log, should_stop)
    # Each trainer takes these under the same names; ``params`` is its own algorithm's dataclass.
    common: dict[str, Any] = {
        "base": spec.base,
        "output_dir": Path(spec.output_dir),
        "params": params,
        "trl_overrides": trl_overrides,
        "work_dir": Path(spec.work_dir),
    }
    # Preference rows are checked against the type the worker wrote them as (rlhf.dataset_rows).
    data = read_preference_rows(spec.data) if spec.algorithm in ("dpo", "reward") else read_jsonl(spec.data)
    # Each trainer's module only when its algorithm runs: together they load every TRL trainer.
    if spec.algorithm == "dpo":
        from rlhf.training.dpo import train_dpo  # heavy: loads torch and transformers

        return train_dpo(rows=data, callbacks=[callback], **common)
    if spec.algorithm == "reward":
        from rlhf.training.reward import train_reward  # heavy: loads torch and transformers

        return train_reward(rows=data, callbacks=[callback], **common)
    if spec.algorithm == "sft":
        from rlhf.training.sft import train_sft  # heavy: loads torch and transformers

        return train_sft(examples=data, callbacks=[callback], **common)
    from rlhf.training.online import train_online  # heavy: loads torch and transformers

    if spec.reward_model is None:  # the worker names one for every online run
        raise ValueError(f"{spec.algorithm} trains against a reward model, and the spec names none")
    return train_online(
        algorithm=spec.algorithm,
        prompts=data,
        reward_model=spec.reward_model,
        on_log=on_log,
        should_stop=should_stop,
        **common,
    )


def make_merged_copies(spec: TrainerSpec) -> None:
    """Merge an adapter base (or reward model) into the full folder TRL loads, unless a cached copy exists."""
    for step in spec.merges:
        made = Path(step.dest) / "config.json"  # merge_into renames the whole folder into place
        if not _is_main_process():
            while not made.is_file():  # the main rank merges; if it fails, torchrun stops this rank
                time.sleep(0.5)
        elif not made.is_file():
            Path(step.dest).parent.mkdir(parents=True, exist_ok=True)
            merge_into(step.ref, step.dest, reward=step.reward)


def trained_model(spec: TrainerSpec):
    """The new checkpoint as a loader takes it: a full folder, or an adapter over the run's base."""
    kind = adapter_kind(spec.output_dir)
    return ModelRef(path=spec.output_dir, base=ModelRef(path=spec.base), adapter=kind) if kind else spec.output_dir


def evaluate(spec: TrainerSpec, metrics: dict[str, Any]) -> dict[str, Any]:
    """Measure the new policy against its parent on held-out prompts (skipped for reward models)."""
    params, _ = spec.typed_params()
    if not spec.eval_prompts or not params.eval_samples or metrics.get("stopped"):
        return metrics
    return {
        **metrics,
        **parent_comparison.compare_with_parent(
            policy_path=trained_model(spec),
            parent_path=spec.base,
            prompts=spec.eval_prompts,
            reward_model_path=spec.reward_model,
            samples_per_prompt=params.eval_samples,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m rlhf.training.child SPEC.json", file=sys.stderr)
        return 2
    spec = TrainerSpec.read(argv[0])
    if _launched_ranks() > 1:
        _die_with_launcher()
        # A rank that dies in native code (an abort in a collective, a segfault) leaves only a signal
        # in torchrun's summary: its Python stack, printed to the run's log, says where it was.
        faulthandler.enable()
    metrics = run(spec)
    if _is_main_process():
        params, _ = spec.typed_params()
        ranks = _trained_ranks()
        metrics = {
            **metrics,
            "processes": ranks,
            "global_batch_size": params.batch_size * params.gradient_accumulation_steps * ranks,
        }
        metrics = evaluate(spec, metrics)
        if Path(spec.stop).exists():
            print("training stopped: cancel requested", file=sys.stderr)
            return 3
        result = Path(spec.result)
        tmp = result.with_suffix(".tmp")
        tmp.write_text(json.dumps(metrics, default=float))
        tmp.replace(result)
    return 0


if __name__ == "__main__":
    if _launched_ranks() > 1:
        # A failing rank's exception, written where torchrun's summary (the end of the run's log) shows it.
        from torch.distributed.elastic.multiprocessing.errors import record

        sys.exit(record(main)())
    sys.exit(main())
