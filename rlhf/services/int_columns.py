"""Integer columns of many rows read straight into a numpy array.

The quality figures need three integers per vote. At a million votes, building a Python tuple
per row costs more than the figures themselves (about 1.3 s just to fetch them). On PostgreSQL
each column comes back as one value, its rows gathered by ``array_agg`` and sent in the binary
array format (``array_send``), and the bytes are read as an array: one row crosses the wire
instead of a million (a binary ``COPY`` still sends a message, and so a Python call, per row).
Elsewhere (SQLite) the rows come through a cursor a batch at a time.

The rows come in the order the database returns them, the same for every column: they are one
aggregate's input. A caller that needs an order sorts the array.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from sqlmodel import Session

_BATCH = 50_000
# One int8 element in the binary array format: its 32-bit length (always 8) and the value.
_ELEMENT = np.dtype([("len", ">i4"), ("v", ">i8")])
_INT8_OID = 20


def int_columns(session: Session, query: sa.Select) -> np.ndarray:
    """The rows of ``query`` (integer columns, none NULL) as an int64 array of shape (rows, columns).

    On PostgreSQL a column travels as one ``bytea`` value, which caps a read at about 89 million
    rows (a value is at most 1 GB, 12 bytes a row). Each column is an aggregate's work (about a
    tenth of a second at a million rows), so a caller that can packs its columns into one.
    """
    width = len(query.selected_columns)
    if session.get_bind().dialect.name == "postgresql":
        return _gathered(session, query, width)
    parts = [
        np.array(batch, dtype=np.int64).reshape(-1, width)
        for batch in session.connection()
        .execute(query, execution_options={"stream_results": True, "yield_per": _BATCH})
        .partitions()
    ]
    return np.concatenate(parts) if parts else np.empty((0, width), dtype=np.int64)


def _gathered(session: Session, query: sa.Select, width: int) -> np.ndarray:
    rows = query.subquery()
    sent = [sa.func.array_send(sa.func.array_agg(sa.cast(c, sa.BigInteger))) for c in rows.c]
    columns = session.execute(sa.select(*sent).select_from(rows)).one()
    if columns[0] is None:  # array_agg over no rows is NULL
        return np.empty((0, width), dtype=np.int64)
    parsed = [parse_int8_array(bytes(c)) for c in columns]
    return np.stack(parsed, axis=1) if parsed else np.empty((0, width), dtype=np.int64)


def parse_int8_array(data: bytes) -> np.ndarray:
    """A one-dimensional ``int8[]`` without NULLs in PostgreSQL's binary array format, as int64.

    The format: the number of dimensions, a has-NULLs flag and the element type, then per
    dimension its size and lower bound, then per element a 32-bit length and the value, all
    big-endian.
    """
    head = np.frombuffer(data[:20], dtype=">i4") if len(data) >= 20 else np.empty(0, dtype=">i4")
    if len(head) != 5 or head[0] != 1 or head[1] != 0 or head[2] != _INT8_OID:
        raise ValueError("not a one-dimensional int8 array without NULLs")
    body = data[20:]
    if len(body) != int(head[3]) * _ELEMENT.itemsize:
        raise ValueError("int8 array of unexpected length")
    elements = np.frombuffer(body, dtype=_ELEMENT)
    if (elements["len"] != 8).any():
        raise ValueError("int8 array with an element that is not 8 bytes")
    return elements["v"].astype(np.int64)
