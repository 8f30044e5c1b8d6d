"""Every algorithm's run parameters, in one registry, validated before a run is queued.

One dataclass per algorithm, each extending :class:`~rlhf.training.base_params.CommonParams`
so the shared fields have one name everywhere (``steps``, ``learning_rate``,
``batch_size``, ``beta``...). Nothing here, nor in the modules it imports, loads torch or
TRL: the web process validates parameters without loading a model library.

Keys that are not ours may be passed straight to TRL's config with a ``trl.`` prefix
(``--set trl.warmup_steps=10``). Their names are checked here against the fields of
that algorithm's TRL config (shipped as a list, :mod:`rlhf.training.trl_fields`), so a
misspelt name is refused with its close matches instead of doing nothing; TRL checks
their values when the run starts.
A class may accept old spellings (``ALIASES``, e.g. PPO's ``total_updates`` for
``steps``): they are rewritten to the current name on validation, and giving both is refused.
``use_lora=true`` is the old spelling of ``peft=lora`` for every algorithm.
An algorithm that cannot train a prompt-tuning adapter says why in ``NO_PROMPT_TUNING``.
Defaults are for the small models this tool is tried on first: TRL's own default
learning rates barely move a small model in a few dozen steps.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from rlhf.errors import InvalidInput
from rlhf.training.base_params import CommonParams, OnlineParams, param
from rlhf.training.ppo.config import PPOParams
from rlhf.training.ranking_weights import RANKING_WEIGHTS
from rlhf.training.strength import DEFAULT_MARGINS, DEFAULT_OFFSETS, check_strength_params, misplaced
from rlhf.training.trl_fields import CONFIGS, shipped_fields


@dataclass
class OfflineParams(CommonParams):
    """Training on stored examples: each one is cut at ``max_length`` tokens."""

    max_length: int = param(512, "tokens per example (prompt + response); longer ones are truncated")


@dataclass
class SFTParams(OfflineParams):
    learning_rate: float = param(1e-3, "peak learning rate")
    data: str = param("", "JSONL file of {'messages': [...]} demonstrations; empty = the chosen responses of the votes")


@dataclass
class PreferenceParams(OfflineParams):
    """Training on votes: each row's label is trusted as far as its votes say (see ``soft_targets``)."""

    soft_labels: bool = param(
        True,
        "train each pair towards the probability its votes give it (vote split, or the "
        "rater's measured reliability); false: every label is taken as certain",
    )
    label_smoothing: float = param(
        0.0,
        "conservative DPO's flip probability, applied on top of each pair's own: "
        "p(1-e) + (1-p)e (not TRL's robust/EXO label_smoothing: that is "
        "trl.label_smoothing)",
    )
    use_strength: bool = param(
        False,
        "shift each pair's preference logit by how much better its vote says the chosen answer "
        "is (strength 1-3; rows without one: no shift)",
    )
    ranking_weight: str = param(
        "judgement",
        "how a ranking of K answers (stored as its K(K-1)/2 pairs) weighs in the loss: 'judgement' "
        "counts it as one judgement (each pair 1/C(K,2) for the reward model, 1/(K-1) for DPO); "
        "'pair' counts every pair as one, as a plain pair",
    )


@dataclass
class RewardParams(PreferenceParams):
    # Shared fields that cannot act on this algorithm: refused, with the reason, rather than ignored.
    INAPPLICABLE: ClassVar[dict[str, str]] = {
        "eval_samples": "a reward model is measured on its held-out votes (eval_fraction), not by sampling"
    }
    NO_PROMPT_TUNING: ClassVar[str] = (
        "online RL hands a reward checkpoint to TRL (reward_funcs) and to PPO's "
        "value model as plain weights, made by merging an adapter; prompt tuning "
        "cannot be merged (use peft=lora)"
    )
    learning_rate: float = param(1e-3, "peak learning rate")
    steps: int = param(100, "optimizer steps to train for")
    eval_fraction: float = param(0.2, "share of votes held out to measure accuracy")
    strength_margins: list = param(
        DEFAULT_MARGINS,
        "with use_strength: the margin per strength (slightly, clearly, much better) in "
        "-log sigmoid(r_chosen - r_rejected - margin); Llama 2's small scale",
    )


@dataclass
class DPOParams(PreferenceParams):
    beta: float = param(0.1, "strength of the pull towards the reference model")
    # DPO alone on a model's own samples is unstable round over round (both log-probs
    # fall and mass moves to junk tokens); an SFT term on the chosen response keeps it
    # anchored. Set loss_type=["sigmoid"] for plain DPO.
    loss_type: list = param(["sigmoid", "sft"], "TRL DPO loss terms, combined with loss_weights")
    loss_weights: list = param([1.0, 1.0], "weights of the loss terms")
    strength_offsets: list = param(
        DEFAULT_OFFSETS,
        "with use_strength: the offset per strength (slightly, clearly, much better) in "
        "-log sigmoid(beta * (logratio_chosen - logratio_rejected) - offset) (ODPO)",
    )


@dataclass
class GroupParams(OnlineParams):
    """RLOO and GRPO (TRL): advantages from a group of completions per prompt, no value model."""

    NO_PROMPT_TUNING: ClassVar[str] = (
        "prompt tuning is offered for DPO and SFT; rollouts with virtual tokens "
        "are not verified for RLOO/GRPO here (use peft=lora)"
    )
    # Moves the tiny model within ~20 steps; scale down (1e-6..1e-5) for billion-parameter models.
    learning_rate: float = param(5e-4, "peak learning rate")
    steps: int = param(30, "optimizer steps")
    batch_size: int = param(8, "completions per device per step; must divide by num_generations")
    num_generations: int = param(4, "completions sampled per prompt (the group RLOO/GRPO compare within)")


@dataclass
class RLOOParams(GroupParams):
    pass


@dataclass
class GRPOParams(GroupParams):
    pass


PARAMS_BY_ALGORITHM: dict[str, type[CommonParams]] = {
    "sft": SFTParams,
    "reward": RewardParams,
    "dpo": DPOParams,
    "rloo": RLOOParams,
    "grpo": GRPOParams,
    "ppo": PPOParams,
}
# Fields that must be at least 1 wherever a class has them.
_POSITIVE = (
    "steps",
    "batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "num_processes",
    "mini_batch_size",
    "num_ppo_epochs",
    "max_prompt_length",
    "max_completion_length",
    "num_generations",
    "logging_steps",
)
_CHOICES = {
    "value_model_init": ("auto", "reward", "policy"),
    "peft": ("none", "lora", "prompt_tuning"),
    "ranking_weight": RANKING_WEIGHTS,
}


def params_class(algorithm: Any) -> type[CommonParams]:
    key = getattr(algorithm, "value", algorithm)
    try:
        return PARAMS_BY_ALGORITHM[key]
    except KeyError:
        raise InvalidInput(f"no parameters known for algorithm {key!r}") from None


def _defaults(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is dataclasses.MISSING:  # every parameter is declared by param(), with a default
        raise TypeError(f"parameter {f.name} has no default")
    return f.default_factory()


def _coerce(name: str, value: Any, f: dataclasses.Field) -> Any:
    default = _default(f)
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            if isinstance(default, list):
                value = [v.strip() for v in value.split(",") if v.strip()]
            else:
                raise InvalidInput(f"parameter {name}: cannot read {value!r}") from None
    if value is None and "None" in str(f.type):
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InvalidInput(f"parameter {name} must be true or false, not {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise InvalidInput(f"parameter {name} must be an integer, not {value!r}")
        value = int(value)
    elif isinstance(default, float) or (default is None and "float" in str(f.type)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"parameter {name} must be a number, not {value!r}")
        value = float(value)
    elif isinstance(default, list):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise InvalidInput(f"parameter {name} must be a list, not {value!r}")
    elif isinstance(default, str) and not isinstance(value, (str, list)):
        value = str(value)
    return value


def validate_params(algorithm: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Check and coerce user-given params in place; unknown keys are refused with the list of known ones."""
    cls = params_class(algorithm)
    name = getattr(algorithm, "value", algorithm)
    fields = _defaults(cls)
    for old, new in getattr(cls, "ALIASES", {}).items():
        if old in params:
            if new in params:
                raise InvalidInput(f"parameters {old!r} and {new!r} are the same for {name}; give only {new!r}")
            params[new] = params.pop(old)
    _peft_spelling(name, params)
    for key, why in getattr(cls, "INAPPLICABLE", {}).items():
        if key in params:
            raise InvalidInput(f"parameter {key} does nothing for {name}: {why}")
    for key in list(params):
        if key.startswith("trl."):
            _check_trl_name(name, key[4:])
            continue
        if key not in fields:
            hint = (
                "; online RL bounds prompt and answer apart: max_prompt_length, max_completion_length"
                if key == "max_length" and issubclass(cls, OnlineParams)
                else "; a ranking's pairs are weighed in the reward model's and DPO's loss only"
                if key == "ranking_weight"
                else misplaced(key, name)
            )
            known = ", ".join(sorted(fields))
            raise InvalidInput(
                f"unknown parameter {key!r} for {name}{hint}; known: {known} (or trl.<name> for any TRL config field)"
            )
        params[key] = _coerce(key, params[key], fields[key])
    if "loss_type" in params and issubclass(cls, DPOParams):
        # One weight per term: loss_type=sigmoid alone weighs it 1 rather than failing in TRL later.
        params.setdefault("loss_weights", [1.0] * len(params["loss_type"]))
        if len(params["loss_weights"]) != len(params["loss_type"]):
            raise InvalidInput(
                f"loss_weights has {len(params['loss_weights'])} weights for "
                f"{len(params['loss_type'])} loss_type terms; give one weight per term"
            )
    loss_types = params.get("loss_type", _default(fields["loss_type"])) if "loss_type" in fields else None
    check_strength_params(name, params, loss_types)
    if "ranking_weight" in params and loss_types is not None and "sigmoid" not in loss_types:
        raise InvalidInput(
            "ranking_weight weighs DPO's sigmoid term; loss_type has no 'sigmoid' term to weigh",
            param="ranking_weight",
        )
    for key in _POSITIVE:
        if key in params and params[key] < 1:
            raise InvalidInput(f"parameter {key} must be at least 1")
    if "label_smoothing" in params and not 0 <= params["label_smoothing"] < 0.5:
        raise InvalidInput("parameter label_smoothing must be at least 0 and below 0.5 (a flip probability)")
    if "learning_rate" in params and not 0 < params["learning_rate"] < 1:
        raise InvalidInput("parameter learning_rate must be between 0 and 1")
    for key, allowed in _CHOICES.items():
        if key in params and params[key] not in allowed:
            raise InvalidInput(f"parameter {key} must be one of {', '.join(allowed)}, not {params[key]!r}")
    peft = params.get("peft", "none")
    no_prompt_tuning = getattr(cls, "NO_PROMPT_TUNING", "")
    if peft == "prompt_tuning" and no_prompt_tuning:
        raise InvalidInput(f"peft=prompt_tuning is not available for {name}: {no_prompt_tuning}")
    if "num_virtual_tokens" in params and peft != "prompt_tuning":
        raise InvalidInput("parameter num_virtual_tokens acts only on a prompt-tuning run: set peft=prompt_tuning")
    if issubclass(cls, GroupParams):
        merged = {
            f: params.get(f, _default(fields[f]))
            for f in ("batch_size", "gradient_accumulation_steps", "num_processes", "num_generations")
        }
        per_step = merged["batch_size"] * merged["gradient_accumulation_steps"] * merged["num_processes"]
        if per_step % merged["num_generations"]:
            raise InvalidInput(
                f"{name} samples batch_size x gradient_accumulation_steps x num_processes = {per_step} "
                f"completions per step, which must divide by num_generations "
                f"({merged['num_generations']})"
            )
    if getattr(cls, "SINGLE_PROCESS", False) and params.get("num_processes", 1) > 1:
        raise InvalidInput(f"{name} trains in one process: num_processes must be 1")
    if getattr(cls, "SINGLE_PROCESS", False) and params.get("accelerate_config"):
        raise InvalidInput(f"{name} trains in one process: accelerate_config has nothing to configure")
    return params


def _peft_spelling(algorithm: str, params: dict[str, Any]) -> None:
    """``use_lora=true`` (the old spelling) becomes ``peft=lora``; ``use_lora=false`` means no LoRA."""
    if "use_lora" not in params:
        return
    value = params.pop("use_lora")
    if isinstance(value, str):
        value = {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower(), value)
    if not isinstance(value, bool):
        raise InvalidInput(f"parameter use_lora must be true or false, not {value!r}")
    given = params.get("peft")
    if given is not None and given != "none" and (given == "lora") != value:
        raise InvalidInput(f"use_lora={str(value).lower()} contradicts peft={given} for {algorithm}; give only peft")
    if value:
        params["peft"] = "lora"
    elif given is None:
        params["peft"] = "none"


def _check_trl_name(algorithm: str, name: str) -> None:
    if algorithm not in CONFIGS:
        raise InvalidInput(
            f"{algorithm} is the project's own trainer, not TRL's: trl.{name} has nowhere to go; "
            f"its parameters are: "
            f"{', '.join(f.name for f in dataclasses.fields(params_class(algorithm)))}"
        )
    fields = shipped_fields()[algorithm]
    if name not in fields:
        close = difflib.get_close_matches(name, fields, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join('trl.' + c for c in close)}?" if close else ""
        raise InvalidInput(f"trl.{name} is not a field of TRL's {CONFIGS[algorithm]}{hint}")


def _json_value(value: Any) -> Any:
    """``--set trl.warmup_steps=10`` arrives as the string "10": TRL's config wants the number."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def build_params(algorithm: Any, params: dict[str, Any]) -> tuple[CommonParams, dict[str, Any]]:
    """The dataclass for a run, plus the ``trl.`` pass-through keys."""
    params = validate_params(algorithm, dict(params))
    ours = {k: v for k, v in params.items() if not k.startswith("trl.")}
    trl = {k[4:]: _json_value(v) for k, v in params.items() if k.startswith("trl.")}
    return params_class(algorithm)(**ours), trl


def describe(algorithm: Any) -> list[tuple[str, Any, str]]:
    """(name, default, help) for every parameter: used by --help texts and the console."""
    cls = params_class(algorithm)
    formerly = {new: old for old, new in getattr(cls, "ALIASES", {}).items()}
    return [
        (
            f.name,
            _default(f),
            f.metadata["help"] + (f" (also accepted as {formerly[f.name]})" if f.name in formerly else ""),
        )
        for f in dataclasses.fields(cls)
    ]


def parse_set_options(pairs: list[str]) -> dict[str, Any]:
    """``["steps=20", "beta=0.2"]`` → dict; values are kept as strings and coerced on validation."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidInput(f"a parameter setting is written KEY=VALUE, not {pair!r}", param="set")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out
