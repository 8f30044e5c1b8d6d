"""Adapter checkpoints: what one is, and the one place a model is loaded from a checkpoint.

A LoRA or prompt-tuning run saves only its adapter, in PEFT's format
(``adapter_config.json`` + ``adapter_model.safetensors``, and the tokenizer). It names
its base checkpoint by id, never by path: paths differ between containers and machines.
The id is in the ``checkpoint`` row (``base_checkpoint_id``, ``adapter``) and in
``rlhf_adapter.json`` beside PEFT's files (so a copied folder still says what it needs);
PEFT's own ``base_model_name_or_path`` is cleared, so nothing tries to load a stale path.

Whoever holds the database resolves a checkpoint into a :class:`ModelRef` (the folder,
and its base's current location, recursively: a LoRA run may start from an adapter
checkpoint); :func:`load_causal_lm` and :func:`load_sequence_classifier` load any ref.
A LoRA adapter is merged into its base in memory after loading (its samples are then
exactly those of the merged checkpoint); prompt tuning cannot be merged and stays a PEFT
model. Nothing here imports torch at module level: the web process reads refs too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlhf.errors import ConfigError, Conflict, RLHFError
from rlhf.modeling.tokens import load_tokenizer

PEFT_CONFIG = "adapter_config.json"
BASE_FILE = "rlhf_adapter.json"
LORA, PROMPT_TUNING = "lora", "prompt_tuning"
_PEFT_TYPES = {"LORA": LORA, "PROMPT_TUNING": PROMPT_TUNING}
# Why each adapter kind that cannot be merged into weights cannot: shown by merge and the arena.
NOT_MERGEABLE = {
    PROMPT_TUNING: "a prompt-tuning adapter is a set of learned virtual input tokens, not a change to "
    "any weight, so there is nothing to merge into the base (PEFT's merge_and_unload "
    "does not exist for it)"
}


@dataclass(frozen=True)
class ModelRef:
    """A model to load: a full model folder (or hub id), or an adapter folder over its base."""

    path: str
    base: ModelRef | None = None
    adapter: str | None = None  # LORA or PROMPT_TUNING when ``base`` is set

    @property
    def mergeable(self) -> bool:
        return self.adapter not in NOT_MERGEABLE and (self.base is None or self.base.mergeable)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> ModelRef:
        if isinstance(data, str):
            return cls(path=data)
        base = data.get("base")
        return cls(path=data["path"], base=cls.from_dict(base) if base else None, adapter=data.get("adapter"))


def adapter_kind(folder: str | Path) -> str | None:
    """``lora`` / ``prompt_tuning`` for a PEFT adapter folder, else None (a full model or a hub id)."""
    config = Path(folder) / PEFT_CONFIG
    if not config.is_file():
        return None
    peft_type = json.loads(config.read_text()).get("peft_type", "")
    return _PEFT_TYPES.get(peft_type, peft_type.lower() or LORA)


def adapter_task(folder: str | Path) -> str | None:
    """PEFT's task type of an adapter folder (``CAUSAL_LM``, ``SEQ_CLS``), else None."""
    config = Path(folder) / PEFT_CONFIG
    return json.loads(config.read_text()).get("task_type") if config.is_file() else None


def name_base(folder: str | Path, *, base_checkpoint_id: int, base_name: str) -> None:
    """Write which checkpoint an adapter folder is over, by id; clear PEFT's stale base path."""
    folder = Path(folder)
    config_path = folder / PEFT_CONFIG
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = None
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    (folder / BASE_FILE).write_text(
        json.dumps(
            {"adapter": adapter_kind(folder), "base_checkpoint_id": base_checkpoint_id, "base_name": base_name},
            indent=2,
        )
    )


def named_base(folder: str | Path) -> dict[str, Any] | None:
    """What :func:`name_base` wrote, or None."""
    path = Path(folder) / BASE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _as_ref(model: str | ModelRef) -> ModelRef:
    if isinstance(model, ModelRef):
        return model
    if adapter_kind(model) is not None:
        named = named_base(model) or {}
        which = f" (its base is checkpoint {named['base_checkpoint_id']})" if named else ""
        raise ConfigError(f"{model} holds an adapter{which}: load it through its checkpoint, which names its base")
    return ModelRef(path=str(model))


def _load(ref: ModelRef, auto_cls, merge: bool, **kwargs):
    if ref.base is None:
        return auto_cls.from_pretrained(ref.path, **kwargs)
    from peft import PeftModel

    base = _load(ref.base, auto_cls, True, **kwargs)
    model = PeftModel.from_pretrained(base, ref.path)
    if merge and ref.adapter not in NOT_MERGEABLE:
        model = model.merge_and_unload()
    return model


def load_causal_lm(model: str | ModelRef, *, merge: bool = True, **kwargs):
    """A causal LM from a folder, a hub id or a ref; an adapter is applied over its base (LoRA merged)."""
    from transformers import AutoModelForCausalLM

    return _load(_as_ref(model), AutoModelForCausalLM, merge, **kwargs)


def load_sequence_classifier(model: str | ModelRef, **kwargs):
    """A one-label sequence classifier (a reward model) from a folder, a hub id or a ref."""
    from transformers import AutoModelForSequenceClassification

    kwargs.setdefault("num_labels", 1)
    return _load(_as_ref(model), AutoModelForSequenceClassification, True, **kwargs)


def tokenizer_path(model: str | ModelRef) -> str:
    """Where a model's tokenizer is: every checkpoint folder, adapters included, saves its own."""
    return model.path if isinstance(model, ModelRef) else str(model)


def _unmergeable_adapter(ref: ModelRef) -> str:
    """The kind of the adapter that makes ``ref`` unmergeable: its own, else the nearest one down its bases."""
    node: ModelRef | None = ref
    while node is not None:
        if node.adapter is not None and node.adapter in NOT_MERGEABLE:
            return node.adapter
        node = node.base
    raise ValueError(f"{ref.path} can be merged")


def merge_into(ref: ModelRef, dest: str | Path, *, reward: bool | None = None) -> Path:
    """Save ``ref`` merged into one full model folder at ``dest`` (written under a temporary name, then renamed).

    Refuses a ref whose adapter cannot be merged, saying why.
    """
    import os
    import shutil
    import uuid

    if not ref.mergeable:
        raise Conflict(f"cannot merge: {NOT_MERGEABLE[_unmergeable_adapter(ref)]}")
    dest = Path(dest)
    if reward is None:
        reward = adapter_task(ref.path) == "SEQ_CLS"
    model = load_sequence_classifier(ref) if reward else load_causal_lm(ref)
    tmp = dest.with_name(f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}")
    model.save_pretrained(tmp)
    load_tokenizer(tokenizer_path(ref)).save_pretrained(tmp)
    gen = getattr(model, "generation_config", None)
    if gen is not None and not reward:
        gen.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """A merge whose worker was killed stops too: its job is reaped, and no folder appears after."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def merge_in_child(ref: ModelRef, dest: str | Path) -> Path:
    """:func:`merge_into` in a process of its own, for a worker's merge job: the worker loads no model."""
    import subprocess
    import sys
    import tempfile

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=dest.parent, delete=False) as fh:
        json.dump(ref.to_dict(), fh)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rlhf.modeling.adapters", fh.name, str(dest)],
            capture_output=True,
            text=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        Path(fh.name).unlink(missing_ok=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RLHFError(f"merging {ref.path} into {dest} failed: {last}")
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m rlhf.modeling.adapters REF.json DEST``: merge in a process of its own (its caller loads no model)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m rlhf.modeling.adapters REF.json DEST", file=sys.stderr)
        return 2
    try:
        merge_into(ModelRef.from_dict(json.loads(Path(argv[0]).read_text())), argv[1])
    except RLHFError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
