"""The trainer spec: what a worker hands the trainer process, written to and read from ``spec.json``.

The worker (:mod:`rlhf.jobs.training`) builds one from the database and writes it; the
trainer process (:mod:`rlhf.training.child`) reads it back. Nothing in it refers to the
database. No torch here: the worker imports it too.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf.modeling.adapters import ModelRef
from rlhf.training.base_params import CommonParams
from rlhf.training.params import build_params


@dataclass(frozen=True)
class MergeStep:
    """A full-weights folder the trainer makes before training: an adapter checkpoint merged into its base."""

    dest: str  # the merged copy's folder (a cache: an existing copy is reused)
    ref: ModelRef  # the adapter over its base, as the worker resolved it
    reward: bool = False  # a reward model (sequence classifier) rather than a policy

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MergeStep:
        return cls(dest=data["dest"], ref=ModelRef.from_dict(data["ref"]), reward=bool(data.get("reward", False)))


@dataclass
class TrainerSpec:
    run_id: int
    algorithm: str  # an ``Algorithm`` value
    base: str  # path or hub id of the policy trained from
    reward_model: str | None  # path of the reward checkpoint (online RL), else None
    params: dict[str, Any]  # the run's validated parameters, as stored on the run
    data: str  # JSONL of the frozen training rows (or prompts for online RL)
    output_dir: str  # temporary model directory, renamed into place by the worker
    work_dir: str  # scratch space for the trainer
    progress: str  # JSONL file the trainer appends one line per logged step to
    result: str  # JSON file written last; its absence means the run failed
    stop: str  # file whose existence asks the trainer to stop between steps
    eval_prompts: list[list[dict]] = field(default_factory=list)  # held-out conversations
    # Full-weights folders to make before training, where ``base`` or ``reward_model`` is an
    # adapter checkpoint's merged copy.
    merges: list[MergeStep] = field(default_factory=list)

    def typed_params(self) -> tuple[CommonParams, dict[str, Any]]:
        """The parameters as their algorithm's dataclass, plus the ``trl.`` pass-through keys."""
        return build_params(self.algorithm, self.params)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> TrainerSpec:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**{**data, "merges": [MergeStep.from_dict(m) for m in data.get("merges", [])]})


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
