"""Signed, timestamped credentials (cookies and tokens): itsdangerous, with the app's clock.

One key per purpose (the salt): a cookie can never be replayed as a token, or the reverse.
The clock is the web context's, so tests can move time; itsdangerous reads it through the
one method it offers for that, :meth:`TimestampSigner.get_timestamp`
(``tests/security/test_sessions.py`` pins the version).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer


class _ClockSigner(TimestampSigner):
    def __init__(self, *args: Any, clock: Callable[[], float], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


class Signer:
    """``dumps`` a JSON object into a signed, timestamped string; ``loads`` it back, or None."""

    def __init__(self, secret: str, purpose: str, clock: Callable[[], float]):
        self._serializer = URLSafeTimedSerializer(
            secret,
            salt=f"rlhf:{purpose}",
            signer=_ClockSigner,
            signer_kwargs={"clock": clock, "digest_method": hashlib.sha256},
        )

    def dumps(self, payload: dict[str, Any]) -> str:
        return self._serializer.dumps(payload)

    def loads(self, token: str, max_age_s: float) -> dict[str, Any] | None:
        """The payload, or None if the signature is wrong, the token older than ``max_age_s``
        (or from the future), or its payload not a JSON object."""
        try:
            payload = self._serializer.loads(token, max_age=int(max_age_s))
        except (BadData, ValueError, TypeError):
            return None
        # Well signed yet not our shape (only someone holding the key could make one): refused, not a crash.
        return payload if isinstance(payload, dict) else None
