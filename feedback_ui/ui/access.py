"""Who is asking: the context every tab's handlers share, and the role checks.

Role checks live in the handlers, not in the layout: a hidden tab is only a hint, and a
rater who sends a console event by hand must be refused by the server. Every handler
therefore starts with :func:`require`, which looks the user up afresh (a user demoted
or deactivated a second ago is refused now, not at their next login).
"""

import html
from contextlib import AbstractContextManager
from dataclasses import dataclass

import gradio as gr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from rlhf import db
from rlhf.jobs.submit import JobQueue
from rlhf.models import Role, User
from rlhf.services.users import find_user
from rlhf.settings import Settings


@dataclass(frozen=True)
class UIContext:
    """What the handlers need, handed to each ``build_…_tab`` (the UI keeps no module state)."""

    settings: Settings
    engine: Engine
    jobs: JobQueue

    @classmethod
    def from_settings(cls, settings: Settings, jobs: JobQueue) -> "UIContext":
        return cls(settings=settings, engine=db.get_engine(settings.database_url), jobs=jobs)

    def session(self) -> AbstractContextManager[Session]:
        """The handler's unit of work: committed when the block ends, rolled back if it raises.

        Objects read here stay readable after the block (no expiry on commit or close).
        """
        return db.session_scope(self.engine)


class Refused(gr.Error):
    """Shown to the user as an error toast; no output of the event is changed.

    Gradio renders an error's message as HTML, so the text is escaped here.
    """

    def __init__(self, text: str, title: str = "Error"):
        super().__init__(html.escape(text), duration=None, title=title, print_exception=False)


def lookup_user(ctx: UIContext, request: gr.Request | None) -> User | None:
    """The active user behind this request (Gradio fills ``username`` from the session cookie)."""
    name = getattr(request, "username", None) if request is not None else None
    if not name:
        return None
    with ctx.session() as session:
        user = find_user(session=session, name=name)
    return user if user is not None and user.active else None


def require(ctx: UIContext, request: gr.Request | None, role: Role = Role.rater) -> User:
    """The user, if their role ranks at least ``role``; otherwise a visible refusal."""
    user = lookup_user(ctx, request)
    if user is None:
        raise Refused("Your session has ended or your account is inactive: log in again.", title="Not logged in")
    if not user.role.allows(role):
        raise Refused(f"This needs the {role.value} role or higher; you are a {user.role.value}.", title="Not allowed")
    return user


def role_allows(user: User | None, role: Role) -> bool:
    return user is not None and user.role.allows(role)
