"""The checkpoint registry: what exists, what serves, where it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import Checkpoint, CheckpointKind, CheckpointStatus


def register_checkpoint(*, session: Session, path: str, name: str, kind: CheckpointKind | str | None = None,
                        serve: bool = False, parent_id: int | None = None, run_id: int | None = None,
                        metrics: dict[str, Any] | None = None) -> Checkpoint:
    """Register a local model directory or a hub id.

    A local directory must hold a model config; its kind (policy or reward) is read from
    it when not given, so a reward model cannot be served to raters by mistake.
    """
    if session.exec(select(Checkpoint).where(Checkpoint.name == name)).first():
        raise Conflict(f"a checkpoint named {name!r} already exists")
    local = Path(path).expanduser()
    if local.exists():
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
    ckpt = Checkpoint(name=name, path=path, kind=kind, parent_id=parent_id, run_id=run_id, metrics=metrics or {},
                      status=CheckpointStatus.serving if serve else CheckpointStatus.available)
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


def list_checkpoints(*, session: Session, kind: CheckpointKind | None = None,
                     status: CheckpointStatus | None = None) -> list[Checkpoint]:
    query = select(Checkpoint).order_by(Checkpoint.id)
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
            raise Conflict(f"checkpoint {ckpt.id} ({ckpt.name}) is the last serving policy: retiring it leaves "
                           "nothing to generate new comparisons from; serve another checkpoint first, "
                           "or force the retirement")
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
    """The newest serving policy: what a run trains from when no base is named."""
    serving = serving_checkpoints(session=session)
    if not serving:
        raise NotFound("no serving policy checkpoint; register one with `rlhf checkpoints add PATH --serve`")
    return serving[-1]
