"""A run's progress: one typed report, from the trainer's log line to the Console and the CLI.

The trainer process appends one :class:`RunProgress` per logged step to its progress file
(:meth:`RunProgress.to_json`, one JSON line); the worker tails that file, stores each line
in the run's log and the latest on the run row (``training_run.progress``, as
:meth:`RunProgress.to_dict`), and says ``phase: evaluating`` once the last step is logged
and the trainer is quiet (it saves and evaluates the new checkpoint). The Console, the
CLI and ``rlhf demo`` read the row back with :meth:`RunProgress.stored`.

The stored shape is the one runs have always had, so old runs still display::

    {"step": 5, "max_steps": 5, "loss": 0.5, "elapsed_s": 1.2, "phase": "evaluating"}

``step`` and ``max_steps`` always, ``phase`` only once it is set, and every logged value
(losses, rewards, learning rate, ...) at the top level beside them. No torch here: the
worker and the web process import it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

EVALUATING = "evaluating"
_OWN_KEYS = ("step", "max_steps", "phase")


@dataclass(frozen=True)
class RunProgress:
    """Where a run is: its step out of how many, what the trainer logged there, and its phase."""

    step: int = 0
    max_steps: int | None = None
    # The numbers the trainer logged at this step (loss, learning_rate, reward, elapsed_s, ...).
    values: dict[str, Any] = field(default_factory=dict)
    phase: str | None = None  # EVALUATING once training is done and the new checkpoint is being evaluated

    @classmethod
    def logged(cls, step: int, values: Mapping[str, Any]) -> RunProgress:
        """What a trainer's log hook reports: the step and its values (``max_steps`` among them)."""
        return cls.from_dict({**values, "step": step})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunProgress:
        """A stored or logged report; any key besides step, max_steps and phase is a logged value."""
        max_steps = data.get("max_steps")
        return cls(
            step=int(data.get("step") or 0),
            max_steps=int(max_steps) if max_steps else max_steps,
            values={k: v for k, v in data.items() if k not in _OWN_KEYS},
            phase=data.get("phase"),
        )

    @classmethod
    def stored(cls, data: Mapping[str, Any] | None) -> RunProgress | None:
        """A run row's progress, or None while the run has reported no step (queued, loading the model)."""
        return cls.from_dict(data) if data and "step" in data else None

    @classmethod
    def from_json(cls, line: str | bytes) -> RunProgress:
        return cls.from_dict(json.loads(line))

    def to_dict(self) -> dict[str, Any]:
        """The stored shape (see the module's docstring)."""
        out = {"step": self.step, "max_steps": self.max_steps, **self.values}
        if self.phase is not None:
            out["phase"] = self.phase
        return out

    def to_json(self) -> str:
        """One line of the trainer's progress file (no newline)."""
        return json.dumps(self.to_dict())

    @property
    def training_done(self) -> bool:
        """The last step is logged: what follows is saving and evaluating."""
        if not self.max_steps:  # unknown (None) or zero
            return False
        return self.step >= self.max_steps

    @property
    def evaluating(self) -> bool:
        return self.phase == EVALUATING

    def now_evaluating(self) -> RunProgress:
        return replace(self, phase=EVALUATING)

    @property
    def step_text(self) -> str:
        """``3/5``, or ``3`` when the number of steps is unknown."""
        return f"{self.step}/{self.max_steps}" if self.max_steps else str(self.step)

    def number(self, key: str) -> float | None:
        """A logged value that is a number (never a bool), else None."""
        value = self.values.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
