"""Console section for admins: the user list, adding a user with a role, (de)activating one, ending its logins.

The section is shown to admins only, and every handler checks the admin role again:
an engineer who sends these events by hand is refused.
"""

import time

import gradio as gr
import pandas as pd

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, fmt_time, message
from rlhf.errors import Conflict, RLHFError
from rlhf.models import Role
from rlhf.services import sessions as sessions_svc
from rlhf.services import users as users_svc

USER_HEADERS = ["ID", "Name", "Role", "Active", "Created"]


def _users(ctx: UIContext):
    with ctx.session() as session:
        return users_svc.list_users(session=session)


def build_users_section(ctx: UIContext) -> gr.Accordion:
    """An accordion (hidden until the page knows the visitor is an admin); loads when opened."""
    with gr.Accordion("Users (admins only)", open=False, visible=False) as section:
        table = gr.Dataframe(headers=USER_HEADERS, interactive=False, label="Users", elem_id="users-table")
        with gr.Row():
            name = gr.Textbox(label="New user name", min_width=160)
            role = gr.Dropdown([r.value for r in Role], value=Role.rater.value, label="Role", min_width=120)
            password = gr.Textbox(label="Password", type="password", min_width=160)
            add = gr.Button("Add user", variant="primary", size="md", scale=0, min_width=120)
        with gr.Row():
            who = gr.Dropdown([], label="User", min_width=200, scale=3)
            deactivate = gr.Button("Deactivate", variant="stop", size="md", scale=1, min_width=120)
            reactivate = gr.Button("Reactivate", size="md", scale=1, min_width=120)
            end_logins = gr.Button("End their sessions", size="md", scale=1, min_width=120)
        status = gr.HTML()

    def listing(request: gr.Request):
        require(ctx, request, Role.admin)
        users = _users(ctx)
        rows = [[u.id, u.name, u.role.value, "yes" if u.active else "no", fmt_time(u.created_at)] for u in users]
        choices = [(f"{u.name} ({u.role.value}{'' if u.active else ', inactive'})", u.id) for u in users]
        return pd.DataFrame(rows, columns=USER_HEADERS), gr.Dropdown(choices=choices)

    def add_user(new_name, new_role, new_password, request: gr.Request):
        require(ctx, request, Role.admin)
        try:
            with ctx.session() as session:
                user = users_svc.create_user(
                    session=session, name=(new_name or "").strip(), role=new_role, password=new_password or ""
                )
        except RLHFError as exc:
            return error_message(exc), gr.skip(), gr.skip()
        return message(f"Added {user.name} as {user.role.value}.", "ok"), "", ""

    def set_active(active: bool):
        def act(user_id, request: gr.Request):
            me = require(ctx, request, Role.admin)
            if not user_id:
                return message("Pick a user first.", "warn")
            try:
                if int(user_id) == me.id and not active:
                    raise Conflict("you cannot deactivate yourself")
                with ctx.session() as session:
                    user = users_svc.set_active(session=session, user_id=int(user_id), active=active)
            except RLHFError as exc:
                return error_message(exc)
            return message(f"{user.name} is now {'active' if user.active else 'inactive'}.", "ok")

        return act

    def end_sessions(user_id, request: gr.Request):
        require(ctx, request, Role.admin)
        if not user_id:
            return message("Pick a user first.", "warn")
        try:
            with ctx.session() as session:
                user = users_svc.get_user(session=session, user_id=int(user_id))
                ended = sessions_svc.revoke_user_sessions(session=session, user_id=user.id, now=time.time())
                name = user.name
        except RLHFError as exc:
            return error_message(exc)
        return message(f"Ended {ended} session{'s' * (ended != 1)} of {name}: they log in again.", "ok")

    private = {"api_visibility": "private"}
    section.expand(listing, None, [table, who], **private)
    add.click(add_user, [name, role, password], [status, name, password], **private).then(
        listing, None, [table, who], **private
    )
    deactivate.click(set_active(False), [who], [status], **private).then(listing, None, [table, who], **private)
    reactivate.click(set_active(True), [who], [status], **private).then(listing, None, [table, who], **private)
    end_logins.click(end_sessions, [who], [status], **private)
    return section
