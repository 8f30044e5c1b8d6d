"""Users, roles and passwords (argon2)."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import Role, User

_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown user as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def find_user(*, session: Session, name: str) -> User | None:
    """The user with this name, or None: the one query every lookup by name goes through."""
    return session.exec(select(User).where(User.name == name)).first()


def create_user(*, session: Session, name: str, role: Role | str, password: str) -> User:
    if not _NAME.match(name):
        raise InvalidInput(f"user name {name!r} may only use letters, digits and _ . @ - (1-128 characters)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}; use rater, engineer or admin") from None
    if role.never_logs_in:
        raise InvalidInput(
            f"the {role.value} role belongs to a model's labels or a judge's verdicts; a person is a rater, "
            "engineer or admin"
        )
    if find_user(session=session, name=name):
        raise Conflict(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def ensure_user(*, session: Session, name: str, role: Role | str, password: str) -> User:
    """Create the user, or update role and password of an existing one (for ``init``)."""
    user = find_user(session=session, name=name)
    if user is None:
        return create_user(session=session, name=name, role=role, password=password)
    user.role = Role(role)
    if not verify_password(user, password):
        user.password_hash = hash_password(password)
    session.add(user)
    return user


def verify_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(*, session: Session, name: str, password: str) -> User | None:
    user = find_user(session=session, name=name)
    if user is None or not user.active or user.role.never_logs_in:  # a machine rater or a judge
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return None
    return user if verify_password(user, password) else None


def get_user(*, session: Session, user_id: int | None = None, name: str | None = None) -> User:
    user: User | None = None
    if user_id is not None:
        user = session.get(User, user_id)
    elif name is not None:
        user = find_user(session=session, name=name)
    if user is None:
        raise NotFound(f"no user {user_id if user_id is not None else name!r}")
    return user


def list_users(*, session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.id))))


def set_active(*, session: Session, user_id: int, active: bool) -> User:
    user = get_user(session=session, user_id=user_id)
    if active and user.role.never_logs_in:
        raise InvalidInput(f"user {user.name!r} is a {user.role.value} rater; it cannot be made a login")
    user.active = active
    session.add(user)
    return user


def set_excluded(*, session: Session, user_id: int, excluded: bool) -> User:
    """Leave this rater's votes out of exports and new runs (their votes stay stored)."""
    user = get_user(session=session, user_id=user_id)
    user.excluded = excluded
    session.add(user)
    return user
