"""Small editable texts kept in the database (rater guidelines), not in env vars.

They change while the app runs (an engineer edits the guidelines in the console) and
every web process must see the same text, so they live with the data.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from rlhf.errors import InvalidInput
from rlhf.models import AppSetting, utcnow

GUIDELINES = "guidelines"
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 100_000


def get_setting(*, session: Session, key: str) -> AppSetting | None:
    return session.get(AppSetting, key)


def get_text(*, session: Session, key: str, default: str = "") -> str:
    row = get_setting(session=session, key=key)
    return row.value if row is not None else default


def set_text(*, session: Session, key: str, value: str) -> AppSetting:
    """Create or replace one text. Does not commit: the caller owns the transaction."""
    if not key or len(key) > MAX_KEY_CHARS:
        raise InvalidInput(f"setting key must be 1-{MAX_KEY_CHARS} characters")
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidInput(f"text longer than {MAX_VALUE_CHARS} characters")
    if "\x00" in value:
        raise InvalidInput("text contains a NUL character")
    row = session.get(AppSetting, key)
    if row is None:
        try:
            # Two first writes at once both see no row; the loser updates the winner's row.
            with session.begin_nested():
                row = AppSetting(key=key, value=value, updated_at=utcnow())
                session.add(row)
                session.flush()
            return row
        except sa.exc.IntegrityError:
            row = session.get(AppSetting, key, populate_existing=True)
            if row is None:  # the winner's row is gone again: report the conflict itself
                raise
    row.value, row.updated_at = value, utcnow()
    session.add(row)
    session.flush()
    return row


def get_guidelines(*, session: Session) -> AppSetting | None:
    """The rater guidelines (Markdown), or None when nobody has written any yet."""
    return get_setting(session=session, key=GUIDELINES)


def set_guidelines(*, session: Session, text: str) -> AppSetting:
    return set_text(session=session, key=GUIDELINES, value=text)
