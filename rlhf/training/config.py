"""Run parameters per algorithm: dataclasses with help text, validated before a run is queued.

Keys that are not ours may be passed straight to TRL's config with a ``trl.`` prefix
(``--set trl.warmup_ratio=0.1``); TRL validates those when the run starts.
Defaults are for the small models this tool is tried on first: TRL's own default
learning rates barely move a small model in a few dozen steps.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from rlhf.errors import InvalidInput


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class CommonParams:
    steps: int = _f(50, "optimizer steps to train for")
    learning_rate: float = _f(5e-4, "peak learning rate (linear decay)")
    batch_size: int = _f(8, "examples per device per step")
    gradient_accumulation_steps: int = _f(1, "micro-batches accumulated into one optimizer step")
    max_length: int = _f(512, "tokens per example (prompt + response); longer ones are truncated")
    seed: int = _f(0, "random seed for data order and initialisation")
    logging_steps: int = _f(1, "log losses every N steps (these become the run's curves)")
    use_lora: bool = _f(False, "train LoRA adapters instead of all weights (merged on save)")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA scaling alpha")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    num_processes: int = _f(1, "processes for `accelerate launch` (one per GPU); 1 runs the trainer directly")
    accelerate_config: str = _f("", "accelerate config file for multi-GPU runs (see deploy/accelerate/)")
    eval_samples: int = _f(4, "samples per held-out prompt for the evaluation after the run (0 = skip)")


@dataclass
class SFTParams(CommonParams):
    learning_rate: float = _f(1e-3, "peak learning rate")
    data: str = _f("", "JSONL file of {'messages': [...]} demonstrations; empty = the chosen responses of the votes")


@dataclass
class RewardParams(CommonParams):
    learning_rate: float = _f(1e-3, "peak learning rate")
    steps: int = _f(100, "optimizer steps to train for")
    eval_fraction: float = _f(0.2, "share of votes held out to measure accuracy")


@dataclass
class DPOParams(CommonParams):
    beta: float = _f(0.1, "strength of the pull towards the reference model")
    # DPO alone on a model's own samples is unstable round over round (both log-probs
    # fall and mass moves to junk tokens); an SFT term on the chosen response keeps it
    # anchored. Set loss_type=["sigmoid"] for plain DPO.
    loss_type: list = _f(["sigmoid", "sft"], "TRL DPO loss terms, combined with loss_weights")
    loss_weights: list = _f([1.0, 1.0], "weights of the loss terms")
    label_smoothing: float = _f(0.0, "conservative DPO: assumed probability that a label is flipped")


PARAMS_BY_ALGORITHM: dict[str, type] = {"sft": SFTParams, "reward": RewardParams, "dpo": DPOParams}


def register_params(algorithm: str, cls: type) -> None:
    PARAMS_BY_ALGORITHM[algorithm] = cls


def params_class(algorithm: Any) -> type:
    key = getattr(algorithm, "value", algorithm)
    if key not in PARAMS_BY_ALGORITHM:
        _load_online_params()
    try:
        return PARAMS_BY_ALGORITHM[key]
    except KeyError:
        raise InvalidInput(f"no parameters known for algorithm {key!r}") from None


def _load_online_params() -> None:
    try:
        import rlhf.training.online_config  # noqa: F401  (registers ppo/rloo/grpo)
    except ImportError:
        pass


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            if isinstance(default, list):
                value = [v.strip() for v in value.split(",") if v.strip()]
            else:
                raise InvalidInput(f"parameter {name}: cannot read {value!r}") from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InvalidInput(f"parameter {name} must be true or false, not {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise InvalidInput(f"parameter {name} must be an integer, not {value!r}")
        value = int(value)
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"parameter {name} must be a number, not {value!r}")
        value = float(value)
    elif isinstance(default, list):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise InvalidInput(f"parameter {name} must be a list, not {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        value = str(value)
    return value


def validate_params(algorithm: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Check and coerce user-given params in place; unknown keys are refused with the list of known ones."""
    cls = params_class(algorithm)
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(cls)}
    if "steps" in params and "steps" not in defaults and "total_updates" in defaults:
        params["total_updates"] = params.pop("steps")  # PPO counts updates, not optimizer steps
    for key in list(params):
        if key.startswith("trl."):
            continue
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise InvalidInput(f"unknown parameter {key!r} for {getattr(algorithm, 'value', algorithm)}; "
                               f"known: {known} (or trl.<name> for any TRL config field)")
        params[key] = _coerce(key, params[key], defaults[key])
    for key in ("steps", "batch_size", "gradient_accumulation_steps", "max_length", "num_processes"):
        if key in params and params[key] < 1:
            raise InvalidInput(f"parameter {key} must be at least 1")
    if "learning_rate" in params and not 0 < params["learning_rate"] < 1:
        raise InvalidInput("parameter learning_rate must be between 0 and 1")
    return params


def build_params(algorithm: Any, params: dict[str, Any]):
    """The dataclass for a run, plus the ``trl.`` pass-through keys."""
    params = validate_params(algorithm, dict(params))
    ours = {k: v for k, v in params.items() if not k.startswith("trl.")}
    trl = {k[4:]: v for k, v in params.items() if k.startswith("trl.")}
    return params_class(algorithm)(**ours), trl


def describe(algorithm: Any) -> list[tuple[str, Any, str]]:
    """(name, default, help) for every parameter: used by --help texts and the console."""
    cls = params_class(algorithm)
    return [(f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory(), f.metadata["help"])
            for f in dataclasses.fields(cls)]


def parse_set_options(pairs: list[str]) -> dict[str, Any]:
    """``["steps=20", "beta=0.2"]`` → dict; values are kept as strings and coerced on validation."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidInput(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out
