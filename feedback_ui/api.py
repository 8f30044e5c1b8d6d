"""The REST API under ``/api``: thin handlers over :mod:`rlhf.services`.

Each handler authenticates through a role dependency, calls service functions and turns
rows into ``…Public`` schemas. The request's session (:data:`~feedback_ui.auth.DB`) is its
unit of work, committed before the answer goes out, so a 2xx means it is stored. Domain
errors propagate to the one handler in :mod:`feedback_ui.app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, File, Header, Query, Request, Response, UploadFile

from feedback_ui.auth import DB, PathId, require_role, web_context
from feedback_ui.login import SessionsEnded
from feedback_ui.schemas import (
    CheckpointPublic,
    ComparisonHandout,
    ComparisonPublic,
    GenerationJobCreate,
    GenerationJobPublic,
    GoldImportPublic,
    GoldMark,
    GuidelinesBase,
    GuidelinesPublic,
    HealthPublic,
    LeaderboardPublic,
    PromptImportPublic,
    RaterExclusion,
    RunCreate,
    RunDetail,
    RunPublic,
    SkipPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
    VoteAndNext,
    VoteCreate,
    VotePublic,
)
from rlhf.errors import Conflict, InvalidInput
from rlhf.jobs.submit import serve, submit_generation, submit_run
from rlhf.models import Role, TrainingRun, User, Vote
from rlhf.services import (
    app_settings,
    checkpoints,
    comparisons,
    dataset,
    generation_jobs,
    gold,
    prompts,
    quality,
    rating,
    runs,
    stats,
)
from rlhf.services import sessions as sessions_svc
from rlhf.services import users as users_svc
from rlhf.services.leaderboard import leaderboard as fit_leaderboard
from rlhf.services.votes import record_vote

BODY_LIMIT = 2 * 1024 * 1024  # JSON bodies: a prompt list of a few thousand prompts fits
UPLOAD_LIMIT = 20 * 1024 * 1024  # prompt files

router = APIRouter(prefix="/api")
Rater = Annotated[User, Depends(require_role(Role.rater))]
Engineer = Annotated[User, Depends(require_role(Role.engineer))]
Admin = Annotated[User, Depends(require_role(Role.admin))]


@router.get("/health", response_model=HealthPublic, tags=["status"],
            responses={503: {"model": HealthPublic, "description": "the database does not answer"}})
def health(request: Request, session: DB, response: Response) -> HealthPublic:
    """Anyone may ask. 503 when the database is down; "degraded" (still 200) when only the broker is,
    since rating goes on without it."""
    try:
        session.execute(sa.text("SELECT 1"))
        database = "ok"
    except sa.exc.SQLAlchemyError as exc:
        database = f"unavailable: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}"
        response.status_code = 503
    broker = web_context(request).jobs.status()
    healthy = database == "ok" and not broker.startswith("unavailable")
    return HealthPublic(status="ok" if healthy else "degraded", database=database, broker=broker)


# --- rating ---------------------------------------------------------------------------------------


@router.get("/comparisons/next", response_model=ComparisonHandout, tags=["rating"],
            responses={204: {"description": "nothing left for this rater"}})
def next_comparison(request: Request, user: Rater, session: DB):
    """The pair this rater should judge now, in the order they see it (a = left).

    The pair is leased to them for five minutes; asking again returns the same pair.
    """
    settings = web_context(request).settings
    handout = comparisons.next_for_rater(session=session, rater=user, gold_rate=settings.gold_rate)
    if handout is None:
        return Response(status_code=204)
    return _handout_public(handout)


_NEXT_DOC = "also hand out this rater's next pair (leased to them): answer {vote, next}; without it nothing is leased"


@router.post("/votes", response_model=VotePublic | VoteAndNext, status_code=201, tags=["rating"], responses={
    200: {"model": VotePublic | VoteAndNext,
          "description": "a repeat: this rater's vote on this comparison was already stored, and is returned "
                         "unchanged"},
    404: {"description": "no such comparison"},
    409: {"description": "the comparison is closed, was not handed to this rater, or the key was used for "
                          "another vote"}})
def post_vote(body: VoteCreate, request: Request, user: Rater, session: DB, response: Response,
              idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
              next_pair: Annotated[bool, Query(alias="next", description=_NEXT_DOC)] = False):
    """Record a vote; 201 when stored. ``choice`` is in the order this rater was shown.

    Sending it again (a double click, a retry after a timeout) never makes a second vote:
    the answer is 200 with the vote already stored, even if the repeat says something else.
    With ``next=true`` the answer also carries the next pair, saving a ``GET /api/comparisons/next``.
    """
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise InvalidInput("idempotency_key in the body and the Idempotency-Key header differ")
    key = body.idempotency_key or idempotency_key
    fields = {"comparison_id": body.comparison_id, "choice": body.choice, "rationale": body.rationale,
              "idempotency_key": f"{user.id}:{key}" if key else None, "require_handout": True}
    if next_pair:
        result, handout = rating.vote_then_next(session=session, rater=user,
                                                gold_rate=web_context(request).settings.gold_rate, **fields)
    else:
        result, handout = record_vote(session=session, rater=user, **fields), None
    if not result.created:
        response.status_code = 200
    vote = _vote_public(result.vote, result.created)
    if not next_pair:
        return vote
    return VoteAndNext(vote=vote, next=_handout_public(handout) if handout else None)


@router.delete("/votes/{vote_id}", response_model=ComparisonHandout, tags=["rating"], responses={
    404: {"description": "no such vote of this rater's"},
    409: {"description": "the undo window has passed, or a training run's snapshot already holds the vote"}})
def undo_vote(vote_id: PathId, request: Request, user: Rater, session: DB) -> ComparisonHandout:
    """Take back one's own vote within RLHF_UNDO_WINDOW_S seconds: the pair is reopened and handed back
    (leased to this rater, in the order they saw it), which is the answer."""
    handout = rating.undo_vote(session=session, rater=user, vote_id=vote_id,
                               window_s=web_context(request).settings.undo_window_s)
    return _handout_public(handout)


@router.post("/comparisons/{comparison_id}/skip", response_model=SkipPublic, status_code=201, tags=["rating"],
             responses={404: {"description": "no such comparison"},
                        409: {"description": "this rater already voted on it"}})
def skip_comparison(comparison_id: PathId, user: Rater, session: DB) -> SkipPublic:
    """Pass on a pair: it goes back to the pool and is not handed to this rater again for a day."""
    skip = rating.skip_comparison(session=session, rater=user, comparison_id=comparison_id)
    return SkipPublic(comparison_id=skip.comparison_id, skipped_at=skip.created_at)


@router.post("/leases/release", tags=["rating"])
def release_leases(user: Rater, session: DB) -> dict[str, int]:
    """Give back the pairs leased to this rater (the page does this when it closes), so others get them now."""
    return {"released": rating.release_leases(session=session, rater_id=user.id)}


def _handout_public(handout: comparisons.Handout) -> ComparisonHandout:
    return ComparisonHandout(comparison_id=handout.comparison_id, prompt=handout.prompt, a=handout.a, b=handout.b)


def _vote_public(vote: Vote, created: bool) -> VotePublic:
    choice = vote.choice.swapped() if vote.shown_swapped else vote.choice
    return VotePublic(id=vote.id, comparison_id=vote.comparison_id, choice=choice, rationale=vote.rationale,
                      created_at=vote.created_at, created=created)


@router.get("/stats", tags=["rating"])
def get_stats(user: Rater, session: DB) -> dict[str, Any]:
    """Counts. A rater sees their own; engineers and admins see everything, plus their own under ``mine``."""
    mine = stats.rater_stats(session=session, rater_id=user.id)
    if user.role.allows(Role.engineer):
        return {"scope": "all", **stats.overall_stats(session=session),
                "quality": quality.measure(session=session).as_dict(), "mine": mine}
    return {"scope": "mine", **mine}


@router.get("/leaderboard", response_model=LeaderboardPublic, tags=["rating"])
def get_leaderboard(user: Rater, session: DB, bootstrap: Annotated[int, Query(ge=0, le=1000)] = 200,
                    include_simulated: bool = False,
                    source: Annotated[list[Literal["queue", "arena"]], Query(
                        description="count only votes on comparisons of these sources (default: both)")] = []
                    ) -> LeaderboardPublic:
    """Checkpoints ranked by a Bradley–Terry fit of human votes between them (the Rate queue's and the arena's),
    with 95% bootstrap intervals."""
    board = fit_leaderboard(session=session, bootstrap=bootstrap, include_simulated=include_simulated,
                            sources=list(source) or None)
    return LeaderboardPublic.model_validate(board)


@router.get("/guidelines", response_model=GuidelinesPublic, tags=["rating"])
def get_guidelines(user: Rater, session: DB) -> GuidelinesPublic:
    """The rater guidelines (Markdown); empty until someone writes them."""
    row = app_settings.get_guidelines(session=session)
    return GuidelinesPublic(markdown=row.value if row else "", updated_at=row.updated_at if row else None)


@router.put("/guidelines", response_model=GuidelinesPublic, tags=["rating"])
def put_guidelines(body: GuidelinesBase, user: Engineer, session: DB) -> GuidelinesPublic:
    row = app_settings.set_guidelines(session=session, text=body.markdown)
    return GuidelinesPublic(markdown=row.value, updated_at=row.updated_at)


# --- data -----------------------------------------------------------------------------------------

_PROMPTS_DOC = ('a JSON list; each item {"prompt": "…"} or {"messages": [{"role", "content"}, …]}, optional '
                '"id" (re-sending the same id does not duplicate) and "tags"')


@router.post("/prompts", response_model=PromptImportPublic, status_code=201, tags=["data"])
def add_prompts(user: Engineer, session: DB,
                items: Annotated[list[Any], Body(description=_PROMPTS_DOC,
                                                 examples=[[{"prompt": "Name a colour."},
                                                            {"id": "q2", "messages": [{"role": "user",
                                                                                       "content": "Hi!"}]}]])],
                tag: Annotated[list[str], Query(description="add this tag to every prompt")] = []):
    """Import prompts, all or nothing: one bad item refuses the whole list and the error names its index."""
    if not items:
        raise InvalidInput("the list of prompts is empty")
    records = [prompts.parse_record(raw, f"item {i}") for i, raw in enumerate(items)]
    result = prompts.import_records(session=session, records=records, tags=tag)
    return PromptImportPublic(created=result.created, skipped=result.skipped, ids=result.ids)


@router.post("/comparisons/{comparison_id}/gold", response_model=ComparisonPublic, tags=["data"],
             responses={404: {"description": "no such comparison"}})
def mark_gold(comparison_id: PathId, body: GoldMark, user: Engineer, session: DB):
    """Make a comparison gold with its known answer (stored order), or regular again with ``null``.

    Gold pairs are mixed into every rater's queue at RLHF_GOLD_RATE and score the raters."""
    comp = gold.mark_gold(session=session, comparison_id=comparison_id, answer=body.answer)
    return comp


@router.post("/gold/upload", response_model=GoldImportPublic, status_code=201, tags=["data"],
             max_body_size=UPLOAD_LIMIT)
def upload_gold(user: Engineer, session: DB, file: Annotated[UploadFile, File(description=
                "JSONL: prompt (or messages), a, b and answer (a, b, tie or both_bad), or prompt, chosen and "
                "rejected; up to 20 MiB")]):
    """Import gold comparisons, all or nothing; the error names the line."""
    ids = gold.import_gold(session=session, path=Path(file.filename or "gold.jsonl").name, data=file.file.read())
    return GoldImportPublic(created=len(ids), comparison_ids=ids)


@router.post("/prompts/upload", response_model=PromptImportPublic, status_code=201, tags=["data"],
             max_body_size=UPLOAD_LIMIT)
def upload_prompts(user: Engineer, session: DB, file: Annotated[UploadFile, File(description=
                   "JSONL (prompt or messages per line), CSV (a prompt column) or Parquet; up to 20 MiB")],
                   tag: Annotated[list[str], Query(description="add this tag to every prompt")] = []):
    """Import a prompt file, all or nothing; the error names the line. The type is read from the file name."""
    name = Path(file.filename or "upload").name
    result = prompts.import_file(session=session, path=name, data=file.file.read(), tags=tag)
    return PromptImportPublic(created=result.created, skipped=result.skipped, ids=result.ids)


@router.get("/export", tags=["data"], response_class=Response,
            responses={200: {"content": {"application/x-ndjson": {}, "application/vnd.apache.parquet": {}},
                             "description": "prompt / chosen / rejected rows in TRL's conversational format"}})
def export(user: Engineer, session: DB, format: Literal["jsonl", "parquet"] = "jsonl",
           ties: Literal["drop", "keep"] = "drop", aggregate: Literal["majority", "none"] = "majority",
           exclude_flagged: bool = True,
           source: Annotated[list[Literal["queue", "arena", "written"]], Query(
               description="pairs of these comparison sources only (default: all)")] = [],
           labels: Annotated[Literal["human", "machine", "both"], Query(
               description="human: people's votes; machine: a reward model's machine labels (with label_p); "
                           "both: a machine label only where no person voted")] = "human") -> Response:
    """The preference dataset as a download: one row per comparison labelled by the majority of its
    votes (``aggregate=none``: one per vote); gold pairs, excluded and flagged raters left out."""
    rows = dataset.preference_rows(session=session, ties=ties, aggregate=aggregate, exclude_flagged=exclude_flagged,
                                   sources=source or None, labels=labels)
    if format == "jsonl":
        content, media = dataset.to_jsonl_bytes(rows), "application/x-ndjson"
    else:
        content, media = dataset.to_parquet_bytes(rows), "application/vnd.apache.parquet"
    return Response(content, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="preferences.{format}"'})


# --- models and training ----------------------------------------------------------------------------


@router.get("/checkpoints", response_model=list[CheckpointPublic], tags=["models"])
def list_checkpoints(user: Engineer, session: DB):
    return checkpoints.list_checkpoints(session=session)


@router.post("/checkpoints/{checkpoint_id}/serve", response_model=CheckpointPublic, tags=["models"])
def serve_checkpoint(checkpoint_id: PathId, request: Request, user: Engineer, session: DB):
    """Serve a policy: its responses enter the next generation job's comparisons. A LoRA one also gets a
    merge job for the copy an inference engine serves (``GET /api/merge-jobs``); it battles in the arena
    once that is done."""
    ctx = web_context(request)
    ckpt, _ = serve(session=session, queue=ctx.jobs, settings=ctx.settings, checkpoint_id=checkpoint_id,
                    created_by=user.id)
    return ckpt


@router.post("/checkpoints/{checkpoint_id}/retire", response_model=CheckpointPublic, tags=["models"],
             responses={409: {"description": "it is the last serving policy (retire it with force=true)"}})
def retire_checkpoint(checkpoint_id: PathId, user: Engineer, session: DB,
                      force: Annotated[bool, Query(description="retire even the last serving policy")] = False):
    """Stop serving a checkpoint; it stays in the registry and on the leaderboard. The last serving
    policy is refused (nothing would be left to generate from) unless ``force=true``."""
    ckpt = checkpoints.retire_checkpoint(session=session, checkpoint_id=checkpoint_id, force=force)
    return ckpt


@router.post("/generate", response_model=GenerationJobPublic, status_code=202, tags=["models"],
             responses={503: {"description": "the job broker does not answer"}})
def generate(body: GenerationJobCreate, request: Request, user: Engineer, session: DB):
    """Queue a generation job: sample responses from serving checkpoints and open comparisons.

    ``select=uncertain`` opens first the pairs the reward model is least sure about."""
    votes = body.target_votes or web_context(request).settings.votes_per_comparison
    return submit_generation(session=session, queue=web_context(request).jobs, per_checkpoint=body.per_checkpoint,
                             limit=body.limit, tag=body.tag,
                             target_votes=votes, strategy=body.select,
                             reward_checkpoint_id=body.reward_checkpoint_id, pool=body.pool,
                             sampling={"max_new_tokens": body.max_new_tokens, "temperature": body.temperature})


@router.get("/generate/{job_id}", response_model=GenerationJobPublic, tags=["models"])
def get_generation_job(job_id: PathId, user: Engineer, session: DB):
    return generation_jobs.get_generation_job(session=session, job_id=job_id)


@router.post("/runs", response_model=RunPublic, status_code=202, tags=["models"],
             responses={503: {"description": "the job broker does not answer"}})
def start_run(body: RunCreate, request: Request, user: Engineer, session: DB) -> RunPublic:
    """Start a training run; 202 with the queued run (its ``id``). The votes it trains on are frozen now."""
    run = submit_run(session=session, queue=web_context(request).jobs, algorithm=body.algorithm,
                     base_checkpoint_id=body.base_checkpoint_id,
                     reward_checkpoint_id=body.reward_checkpoint_id, params=body.params,
                     serve_on_success=body.serve, ties=body.ties, aggregate=body.aggregate,
                     exclude_flagged=body.exclude_flagged, labels=body.labels, created_by=user.id)
    return _run_public(run)


@router.get("/runs", response_model=list[RunPublic], tags=["models"])
def list_runs(user: Engineer, session: DB, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[RunPublic]:
    """Training runs, newest first."""
    return [_run_public(r) for r in runs.list_runs(session=session, limit=limit)]


@router.get("/runs/{run_id}", response_model=RunDetail, tags=["models"])
def get_run(run_id: PathId, user: Engineer, session: DB) -> RunDetail:
    """A run with its log: the curves (loss, reward, KL per step)."""
    run = runs.get_run(session=session, run_id=run_id)
    log = [{"step": e.step, **e.values} for e in runs.run_log(session=session, run_id=run_id)]
    return RunDetail(**_run_public(run).model_dump(), log=log)


@router.post("/runs/{run_id}/cancel", response_model=RunPublic, tags=["models"],
             responses={409: {"description": "the run has already finished"}})
def cancel_run(run_id: PathId, user: Engineer, session: DB) -> RunPublic:
    """Cancel a queued run at once, or ask a running one to stop (``cancel_requested``)."""
    return _run_public(runs.cancel_run(session=session, run_id=run_id))


def _run_public(run: TrainingRun) -> RunPublic:
    return RunPublic(**runs.run_summary(run))


# --- users ----------------------------------------------------------------------------------------------


@router.get("/me", response_model=UserPublic, tags=["users"])
def me(user: Rater):
    return user


@router.get("/users", response_model=list[UserPublic], tags=["users"])
def list_users(user: Admin, session: DB):
    return users_svc.list_users(session=session)


@router.post("/users", response_model=UserPublic, status_code=201, tags=["users"],
             responses={409: {"description": "the name is taken"}})
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
