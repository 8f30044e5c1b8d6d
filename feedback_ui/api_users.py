"""The REST API's user endpoints: who you are, accounts, exclusion, ending a user's sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request

from feedback_ui.auth import DB, Admin, Engineer, PathId, Rater, web_context
from feedback_ui.login import SessionsEnded
from feedback_ui.schemas import (
    RaterExclusion,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from rlhf.errors import Conflict, InvalidInput
from rlhf.services import sessions as sessions_svc
from rlhf.services import users as users_svc

router = APIRouter(prefix="/api")


@router.get("/me", response_model=UserPublic, tags=["users"])
def me(user: Rater):
    return user


@router.get("/users", response_model=list[UserPublic], tags=["users"])
def list_users(user: Admin, session: DB):
    return users_svc.list_users(session=session)


@router.post(
    "/users",
    response_model=UserPublic,
    status_code=201,
    tags=["users"],
    responses={409: {"description": "the name is taken"}},
)
def create_user(body: UserCreate, user: Admin, session: DB):
    created = users_svc.create_user(session=session, name=body.name, role=body.role, password=body.password)
    return created


@router.put("/users/{user_id}/excluded", response_model=UserPublic, tags=["users"])
def set_excluded(user_id: PathId, body: RaterExclusion, user: Engineer, session: DB):
    """Leave a rater's votes out of exports and new training runs, or use them again (they stay stored)."""
    updated = users_svc.set_excluded(session=session, user_id=user_id, excluded=body.excluded)
    return updated


@router.delete("/users/{user_id}/sessions", response_model=SessionsEnded, tags=["users"])
def end_user_sessions(user_id: PathId, request: Request, user: Admin, session: DB):
    """End every login (browser session and bearer token) of one user: they must log in again."""
    target = users_svc.get_user(session=session, user_id=user_id)
    ended = sessions_svc.revoke_user_sessions(session=session, user_id=target.id, now=web_context(request).clock())
    return SessionsEnded(ended=ended)


@router.patch("/users/{user_id}", response_model=UserPublic, tags=["users"])
def update_user(user_id: PathId, body: UserUpdate, user: Admin, session: DB):
    """Deactivate (or reactivate) a user: a deactivated user's tokens and sessions stop working at once.
    Exclude (or include) a rater: their votes are left out of exports and new runs, and kept."""
    if body.active is None and body.excluded is None:
        raise InvalidInput("nothing to change: give active and/or excluded")
    if user_id == user.id and body.active is False:
        raise Conflict("you cannot deactivate yourself")
    updated = users_svc.get_user(session=session, user_id=user_id)
    if body.active is not None:
        updated = users_svc.set_active(session=session, user_id=user_id, active=body.active)
    if body.excluded is not None:
        updated = users_svc.set_excluded(session=session, user_id=user_id, excluded=body.excluded)
    return updated
