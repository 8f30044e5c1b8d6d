"""The login throttle the web app asks before every password check (see :mod:`rlhf.services.sessions`)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session

from rlhf.services import sessions as sessions_svc


class LoginThrottle:
    """Growing delays on failed logins per user name, whatever the address (rows in the database).

    Each call uses its own short transaction: a failure must count although the request
    that made it is answered with an error, which rolls the request's own work back.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float]):
        self._engine, self._clock = engine, clock

    def retry_after(self, name: str, ip: str = "") -> int | None:
        """Seconds until ``name`` may try a password again, or None if it may now."""
        with Session(self._engine) as session:
            return sessions_svc.login_delay(session=session, name=name, now=self._clock())

    def failed(self, name: str, ip: str) -> None:
        with Session(self._engine) as session:
            sessions_svc.record_login_failure(session=session, name=name, address=ip, now=self._clock())

    def succeeded(self, name: str, ip: str = "") -> None:
        with Session(self._engine) as session:
            sessions_svc.clear_login_failures(session=session, name=name)
