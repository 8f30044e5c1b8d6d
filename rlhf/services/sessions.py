"""Logins that can be ended one at a time, and the throttle on password guessing.

A browser cookie or a bearer token names an :class:`~rlhf.models.AuthSession` row. A
request is authenticated only while its row is unrevoked and unexpired (one primary-key
lookup, joined with the user), so logout ends that one login, "log out everywhere" and an
admin end all of a user's, and a password change or deactivation still ends every one
(the cookie also carries a fingerprint of the password hash).

Password guessing is slowed per user name, whatever the address it comes from (addresses
are cheap to change): the first :data:`FREE_FAILURES` failures within
:data:`FAILURE_WINDOW_S` cost nothing; after that each further attempt waits for a delay
that doubles with every failure, up to :data:`MAX_DELAY_S`. A delay, not a lock: nobody can
keep a user out for longer than that by guessing wrongly, and a right password after the
delay gets in. Clocks are seconds since the epoch, passed in, so tests can move them.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlmodel import Session, col, select

from rlhf.models import AuthSession, LoginFailure, User, stored_id

FREE_FAILURES = 5
FAILURE_WINDOW_S = 900
BASE_DELAY_S = 2
MAX_DELAY_S = 60
SESSION_KINDS = ("cookie", "token")


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, timezone.utc)


def _key(name: str) -> str:
    return name.lower()[:128]


def open_session(
    *, session: Session, user: User, kind: str, now: float, ttl_s: int, user_agent: str | None = None
) -> AuthSession:
    """A new login for ``user`` (a ``cookie`` or a ``token``), valid ``ttl_s`` seconds from ``now``."""
    if kind not in SESSION_KINDS:
        raise ValueError(f"kind must be one of {SESSION_KINDS}")
    # The user's expired rows go as new ones come, so the table holds only live logins and recent history.
    session.exec(
        sa.delete(AuthSession).where(
            col(AuthSession.user_id) == user.id, col(AuthSession.expires_at) < _at(now - 86_400)
        )
    )
    row = AuthSession(
        user_id=stored_id(user),
        kind=kind,
        created_at=_at(now),
        expires_at=_at(now + ttl_s),
        user_agent=(user_agent or "")[:256] or None,
    )
    session.add(row)
    session.flush()
    return row


def live_session_user(*, session: Session, session_id: int, user_id: int, now: float) -> User | None:
    """The user of a live (unrevoked, unexpired) session ``session_id`` that belongs to ``user_id``, else None."""
    found = session.exec(
        select(User)
        .join(AuthSession, col(AuthSession.user_id) == col(User.id))
        .where(
            col(AuthSession.id) == session_id,
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > _at(now),
        )
    ).first()
    return found


def revoke_session(*, session: Session, session_id: int, now: float) -> bool:
    """End one login; True if it was live."""
    result = session.exec(
        sa.update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=_at(now))
    )
    return bool(result.rowcount)


def revoke_user_sessions(*, session: Session, user_id: int, now: float) -> int:
    """End every live login of one user (its cookies and tokens); how many there were."""
    result = session.exec(
        sa.update(AuthSession)
        .where(
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > _at(now),
        )
        .values(revoked_at=_at(now))
    )
    return int(result.rowcount or 0)


def list_sessions(*, session: Session, user_id: int, now: float) -> list[AuthSession]:
    """A user's live logins, newest first."""
    return list(
        session.exec(
            select(AuthSession)
            .where(
                col(AuthSession.user_id) == user_id,
                col(AuthSession.revoked_at).is_(None),
                col(AuthSession.expires_at) > _at(now),
            )
            .order_by(col(AuthSession.id).desc())
        ).all()
    )


# --- the login throttle ---------------------------------------------------------------------------------


def login_delay(*, session: Session, name: str, now: float) -> int | None:
    """Seconds before ``name`` may try a password again, or None if it may now."""
    count, last = session.exec(
        select(sa.func.count(), sa.func.max(LoginFailure.at)).where(
            col(LoginFailure.name) == _key(name), col(LoginFailure.at) > now - FAILURE_WINDOW_S
        )
    ).one()
    if count < FREE_FAILURES or last is None:
        return None
    delay = min(BASE_DELAY_S * 2 ** (count - FREE_FAILURES), MAX_DELAY_S)
    wait = last + delay - now
    return max(1, int(wait) + (wait % 1 > 0)) if wait > 0 else None


def record_login_failure(*, session: Session, name: str, address: str, now: float) -> None:
    """Commits: a failure must count even though the request that made it is answered with an error."""
    session.exec(
        sa.delete(LoginFailure).where(
            col(LoginFailure.name) == _key(name), col(LoginFailure.at) <= now - FAILURE_WINDOW_S
        )
    )
    session.add(LoginFailure(name=_key(name), address=address[:64], at=now))
    session.commit()


def clear_login_failures(*, session: Session, name: str) -> None:
    """Commits: a right password forgets the name's earlier failures."""
    session.exec(sa.delete(LoginFailure).where(col(LoginFailure.name) == _key(name)))
    session.commit()
