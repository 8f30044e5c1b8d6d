"""Small builders for database state, so tests say what they need in one line."""

from __future__ import annotations

import socket

from rlhf.models import Response, Role
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.comparisons import open_comparison
from rlhf.services.prompts import PromptRecord, import_records
from rlhf.services.users import create_user


def user(session, name="alice", role=Role.rater, password="correct-horse"):
    return create_user(session=session, name=name, role=role, password=password)


def comparisons(session, pairs, target_votes=1, checkpoint_path="org/some-model", serve=False, messages=None):
    """Open one comparison per (text_a, text_b) pair, each on its own prompt; returns them.

    ``messages``: every prompt is this conversation (default: "question i" for the i-th pair).
    """
    ckpt = register_checkpoint(session=session, path=checkpoint_path, name=f"ck-{checkpoint_path}", serve=serve)
    prompt_ids = import_records(
        session=session,
        records=[
            PromptRecord(messages=messages or [{"role": "user", "content": f"question {i}"}]) for i in range(len(pairs))
        ],
    ).ids
    out = []
    for pid, (a, b) in zip(prompt_ids, pairs):
        ra = Response(prompt_id=pid, checkpoint_id=ckpt.id, text=a)
        rb = Response(prompt_id=pid, checkpoint_id=ckpt.id, text=b)
        session.add_all([ra, rb])
        session.flush()
        out.append(
            open_comparison(
                session=session, prompt_id=pid, response_a_id=ra.id, response_b_id=rb.id, target_votes=target_votes
            )
        )
    session.commit()
    return out


def ranking(session, texts, target_votes=1, checkpoint_names=None, prompt="question"):
    """Open one ranking of these answers on a prompt of its own; returns it. ``checkpoint_names``: the
    checkpoint each answer comes from (default: one checkpoint for all)."""
    from rlhf.services.rankings import open_ranking

    names = checkpoint_names or ["ck-ranked"] * len(texts)
    from sqlmodel import select

    from rlhf.models import Checkpoint

    ckpts = {
        n: session.exec(select(Checkpoint).where(Checkpoint.name == n)).first()
        or register_checkpoint(session=session, path=f"org/{n}", name=n)
        for n in dict.fromkeys(names)
    }
    [pid] = import_records(session=session, records=[PromptRecord(messages=[{"role": "user", "content": prompt}])]).ids
    responses = [Response(prompt_id=pid, checkpoint_id=ckpts[n].id, text=t) for t, n in zip(texts, names, strict=True)]
    session.add_all(responses)
    session.flush()
    opened = open_ranking(
        session=session, prompt_id=pid, response_ids=[r.id for r in responses], target_votes=target_votes
    )
    session.commit()
    return opened


def local_world(mp, root):
    """Settings for a world of its own under ``root``: an SQLite database there (migrated), the
    embedded worker (no broker). Returns (settings, engine); ``mp`` is a MonkeyPatch the caller undoes."""
    from rlhf import db
    from rlhf.settings import get_settings, reset_settings_cache

    mp.setenv("RLHF_DATA_DIR", str(root / "data"))
    mp.setenv("RLHF_DATABASE_URL", f"sqlite:///{root / 'rlhf.db'}")
    mp.delenv("RLHF_BROKER_URL", raising=False)
    reset_settings_cache()
    settings = get_settings()
    db.migrate(settings.database_url)
    return settings, db.get_engine(settings.database_url)


def free_port() -> int:
    """A port nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
