"""The checkpoint registry: what exists, what serves, where it came from, and how each one loads.

An adapter checkpoint (a LoRA or prompt-tuning run's PEFT folder) names its base checkpoint
by id (``base_checkpoint_id``); :func:`model_ref` resolves that id to the base's current
path, recursively, so every loader gets base + adapter. A retired base still loads; a base
whose row or folder is gone is an error naming it. Merging an adapter into full weights loads
the model, so it is a worker's job (:mod:`rlhf.services.merges`): a new full checkpoint on
request, or the copy an inference engine serves, cached under ``<data dir>/merged/checkpoint-<id>``
(:func:`merged_dir`) and made when a LoRA checkpoint starts serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.inference.client import served_model_name
from rlhf.modeling.adapters import NOT_MERGEABLE, ModelRef, adapter_kind, adapter_task, name_base, named_base
from rlhf.models import Checkpoint, CheckpointKind, CheckpointStatus, stored_id
from rlhf.settings import Settings


def register_checkpoint(
    *,
    session: Session,
    path: str,
    name: str,
    kind: CheckpointKind | str | None = None,
    serve: bool = False,
    parent_id: int | None = None,
    run_id: int | None = None,
    metrics: dict[str, Any] | None = None,
    base_checkpoint_id: int | None = None,
) -> Checkpoint:
    """Register a local model directory, a PEFT adapter directory over a base checkpoint, or a hub id.

    A local directory must hold a model config or an adapter config; its kind (policy or
    reward) is read from it when not given, so a reward model cannot be served to raters by
    mistake. An adapter's base is ``base_checkpoint_id``, or the id its folder names.
    """
    if session.exec(select(Checkpoint).where(Checkpoint.name == name)).first():
        raise Conflict(f"a checkpoint named {name!r} already exists")
    local = Path(path).expanduser()
    adapter = None
    if local.exists() and adapter_kind(local):
        adapter = adapter_kind(local)
        base_checkpoint_id = base_checkpoint_id or (named_base(local) or {}).get("base_checkpoint_id")
        if base_checkpoint_id is None:
            raise InvalidInput(
                f"{path}: a PEFT adapter that names no base checkpoint; register its base model "
                "and train from it, or merge the adapter into a full model first"
            )
        base = get_checkpoint(session=session, checkpoint_id=base_checkpoint_id)
        name_base(local, base_checkpoint_id=stored_id(base), base_name=base.name)
        path = str(local.resolve())
        detected = CheckpointKind.reward if adapter_task(local) == "SEQ_CLS" else CheckpointKind.policy
        kind = CheckpointKind(kind) if kind else detected
    elif local.exists():
        if not (local / "config.json").is_file():
            raise InvalidInput(f"{path}: not a model directory (no config.json)")
        path = str(local.resolve())
        detected = detect_kind(local)
        kind = CheckpointKind(kind) if kind else detected
    elif path.startswith((".", "/", "~")):
        raise InvalidInput(f"{path}: no such directory")
    else:
        kind = CheckpointKind(kind or CheckpointKind.policy)  # a hub id; loading will say if it is unreachable
    if serve and kind is not CheckpointKind.policy:
        raise InvalidInput("only a policy checkpoint can serve; this one is a reward model")
    ckpt = Checkpoint(
        name=name,
        path=path,
        kind=kind,
        parent_id=parent_id,
        run_id=run_id,
        metrics=metrics or {},
        status=CheckpointStatus.serving if serve else CheckpointStatus.available,
        adapter=adapter,
        base_checkpoint_id=base_checkpoint_id if adapter else None,
    )
    session.add(ckpt)
    session.flush()
    return ckpt


def detect_kind(model_dir: Path) -> CheckpointKind:
    import json

    config = json.loads((model_dir / "config.json").read_text())
    archs = config.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return CheckpointKind.reward
    return CheckpointKind.policy


def get_checkpoint(*, session: Session, checkpoint_id: int | str) -> Checkpoint:
    """By id, or by name (the CLI accepts either)."""
    ckpt = None
    if isinstance(checkpoint_id, int) or str(checkpoint_id).isdigit():
        ckpt = session.get(Checkpoint, int(checkpoint_id))
    if ckpt is None:
        ckpt = session.exec(select(Checkpoint).where(Checkpoint.name == str(checkpoint_id))).first()
    if ckpt is None:
        raise NotFound(f"no checkpoint {checkpoint_id!r}")
    return ckpt


def list_checkpoints(
    *, session: Session, kind: CheckpointKind | None = None, status: CheckpointStatus | None = None
) -> list[Checkpoint]:
    query = select(Checkpoint).order_by(col(Checkpoint.id))
    if kind:
        query = query.where(Checkpoint.kind == kind)
    if status:
        query = query.where(Checkpoint.status == status)
    return list(session.exec(query))


def serving_checkpoints(*, session: Session) -> list[Checkpoint]:
    return list_checkpoints(session=session, kind=CheckpointKind.policy, status=CheckpointStatus.serving)


def serve_checkpoint(*, session: Session, checkpoint_id: int | str) -> Checkpoint:
    ckpt = get_checkpoint(session=session, checkpoint_id=checkpoint_id)
    if ckpt.kind is not CheckpointKind.policy:
        raise Conflict(f"checkpoint {ckpt.id} is a reward model; only policies serve")
    ckpt.status = CheckpointStatus.serving
    session.add(ckpt)
    return ckpt


def retire_checkpoint(*, session: Session, checkpoint_id: int | str, force: bool = False) -> Checkpoint:
    """Stop serving a checkpoint. The last serving policy is kept unless ``force``: without one,
    generation jobs have nothing to sample from and runs no default base."""
    ckpt = get_checkpoint(session=session, checkpoint_id=checkpoint_id)
    if not force and ckpt.status is CheckpointStatus.serving and ckpt.kind is CheckpointKind.policy:
        others = [c for c in serving_checkpoints(session=session) if c.id != ckpt.id]
        if not others:
            raise Conflict(
                f"checkpoint {ckpt.id} ({ckpt.name}) is the last serving policy: retiring it leaves "
                "nothing to generate new comparisons from; serve another checkpoint first, "
                "or retire it anyway",
                param="force",
            )
    ckpt.status = CheckpointStatus.retired
    session.add(ckpt)
    return ckpt


def lineage(*, session: Session, checkpoint_id: int) -> list[Checkpoint]:
    """The checkpoint and its ancestors, newest first."""
    chain, seen = [], set()
    ckpt = session.get(Checkpoint, checkpoint_id)
    while ckpt is not None and ckpt.id not in seen:
        chain.append(ckpt)
        seen.add(ckpt.id)
        ckpt = session.get(Checkpoint, ckpt.parent_id) if ckpt.parent_id else None
    return chain


def default_base(*, session: Session) -> Checkpoint:
    """The newest serving policy a run can train from (not a prompt-tuning one): the base when none is named."""
    serving = [c for c in serving_checkpoints(session=session) if not unmergeable_reason(c)]
    if not serving:
        raise NotFound("no serving policy checkpoint", remedy="serve_checkpoint")
    return serving[-1]


def model_ref(*, session: Session, checkpoint: Checkpoint) -> ModelRef:
    """How to load a checkpoint: its folder, and for an adapter its base's current location (recursively).

    Any status loads (a retired base included); a base whose row or local folder is gone
    raises :class:`NotFound` naming it.
    """
    chain: list[Checkpoint] = []
    ckpt = checkpoint
    while ckpt.adapter:
        if ckpt.id in {c.id for c in chain}:
            raise InvalidInput(f"checkpoint {checkpoint.id}: its adapters' bases form a cycle")
        chain.append(ckpt)
        base = session.get(Checkpoint, ckpt.base_checkpoint_id) if ckpt.base_checkpoint_id else None
        if base is None:
            raise NotFound(
                f"checkpoint {ckpt.id} ({ckpt.name}) is an adapter over checkpoint "
                f"{ckpt.base_checkpoint_id}, which no longer exists: its base cannot be loaded"
            )
        ckpt = base
    ref = ModelRef(path=ckpt.path)
    for adapter in reversed(chain):
        ref = ModelRef(path=adapter.path, base=ref, adapter=adapter.adapter)
    for c in [*chain, ckpt]:
        if c is not checkpoint and c.path.startswith(("/", ".", "~")) and not Path(c.path).exists():
            raise NotFound(
                f"checkpoint {checkpoint.id} ({checkpoint.name}) needs its base checkpoint {c.id} "
                f"({c.name}), whose folder {c.path} is gone"
            )
    return ref


def merged_dir(settings: Settings, checkpoint: Checkpoint) -> Path:
    """Where the full-weights copy of an adapter checkpoint is cached (made by a merge job,
    :mod:`rlhf.jobs.merging`)."""
    return settings.data_dir / "merged" / f"checkpoint-{checkpoint.id}"


def unmergeable_reason(checkpoint: Checkpoint) -> str | None:
    """Why this checkpoint has no full-weights form (prompt tuning), or None."""
    return NOT_MERGEABLE.get(checkpoint.adapter or "")


def engine_loads_as_is(settings: Settings, checkpoint: Checkpoint) -> bool:
    """Whether an engine can serve it without a merged copy: a full model, or one ``RLHF_INFERENCE_MODELS`` maps
    (vLLM serves a LoRA adapter by name)."""
    return not checkpoint.adapter or checkpoint.name in settings.inference_models


def has_merged_copy(settings: Settings, checkpoint: Checkpoint) -> bool:
    return (merged_dir(settings, checkpoint) / "config.json").is_file()


def engine_ready(settings: Settings, checkpoint: Checkpoint) -> bool:
    """Whether an OpenAI-compatible engine can answer as this checkpoint now, with no model work first."""
    return engine_loads_as_is(settings, checkpoint) or has_merged_copy(settings, checkpoint)


def served_name(*, session: Session, settings: Settings, checkpoint: Checkpoint) -> str:
    """The model name an OpenAI-compatible engine knows a checkpoint by (``RLHF_INFERENCE_MODELS``, else a path).

    An engine is never handed an adapter folder (``transformers serve`` cannot load one): an
    unmapped LoRA checkpoint is served as its merged copy, which a merge job makes when it is
    served. Nothing is merged here (this runs inside web requests): without a copy yet, or
    for a prompt-tuning checkpoint (which has none), this raises :class:`Conflict`.
    """
    if engine_loads_as_is(settings, checkpoint):
        return served_model_name(name=checkpoint.name, path=checkpoint.path, mapping=settings.inference_models)
    reason = unmergeable_reason(checkpoint)
    if reason:
        raise Conflict(f"checkpoint {checkpoint.id} ({checkpoint.name}) has no full-weights form: {reason}")
    if not has_merged_copy(settings, checkpoint):
        raise Conflict(
            f"checkpoint {checkpoint.id} ({checkpoint.name}) has no merged copy for the inference engine "
            "yet: a merge job makes it when the checkpoint is served"
        )
    return str(merged_dir(settings, checkpoint))
