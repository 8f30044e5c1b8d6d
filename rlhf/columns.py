"""The column kinds the tables share: UTC timestamps, JSON, enums stored as strings, and ids."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, overload

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every value we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def stored_id(row: SQLModel) -> int:
    """A stored row's primary key, typed ``int``: ``id`` is ``None`` only before the row is flushed,
    so reading it earlier is a bug, and it says which row."""
    value = getattr(row, "id", None)
    if value is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush it before reading its id")
    return int(value)


def ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), **kw)


def opt_ts(**kw: Any) -> Any:
    return Field(default=None, sa_type=sa.DateTime(timezone=True), **kw)


def json_field(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


def enum_field(enum_cls: type[enum.Enum], default: Any) -> Any:
    # Stored as plain strings (no native ENUM type, no CHECK) so new members need no DDL change.
    return Field(default=default, sa_type=enum_type(enum_cls), index=True)


def enum_type(enum_cls: type[enum.Enum]) -> sa.Enum:
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )
