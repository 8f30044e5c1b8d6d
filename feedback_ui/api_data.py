"""The REST API's data endpoints: prompts and gold imported, the preference dataset exported."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Query, Response, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from feedback_ui.auth import DB, Engineer, PathId
from feedback_ui.schemas import (
    ComparisonPublic,
    GoldImportPublic,
    GoldMark,
    PromptImportPublic,
)
from rlhf.errors import InvalidInput
from rlhf.services import dataset, gold, prompts

router = APIRouter(prefix="/api")
UPLOAD_LIMIT = 20 * 1024 * 1024  # prompt and gold files


_PROMPTS_DOC = (
    'a JSON list; each item {"prompt": "…"} or {"messages": [{"role", "content"}, …]}, optional '
    '"id" (re-sending the same id does not duplicate) and "tags"'
)


@router.post("/prompts", response_model=PromptImportPublic, status_code=201, tags=["data"])
def add_prompts(
    user: Engineer,
    session: DB,
    items: Annotated[
        list[Any],
        Body(
            description=_PROMPTS_DOC,
            examples=[[{"prompt": "Name a colour."}, {"id": "q2", "messages": [{"role": "user", "content": "Hi!"}]}]],
        ),
    ],
    tag: Annotated[list[str], Query(description="add this tag to every prompt")] = [],
):
    """Import prompts, all or nothing: one bad item refuses the whole list and the error names its index."""
    if not items:
        raise InvalidInput("the list of prompts is empty")
    records = [prompts.parse_record(raw, f"item {i}") for i, raw in enumerate(items)]
    result = prompts.import_records(session=session, records=records, tags=tag)
    return PromptImportPublic(created=result.created, skipped=result.skipped, ids=result.ids)


@router.post(
    "/comparisons/{comparison_id}/gold",
    response_model=ComparisonPublic,
    tags=["data"],
    responses={404: {"description": "no such comparison"}},
)
def mark_gold(comparison_id: PathId, body: GoldMark, user: Engineer, session: DB):
    """Make a comparison gold with its known answer (stored order), or regular again with ``null``.

    Gold pairs are mixed into every rater's queue at RLHF_GOLD_RATE and score the raters."""
    comp = gold.mark_gold(session=session, comparison_id=comparison_id, answer=body.answer)
    return comp


@router.post(
    "/gold/upload", response_model=GoldImportPublic, status_code=201, tags=["data"], max_body_size=UPLOAD_LIMIT
)
def upload_gold(
    user: Engineer,
    session: DB,
    file: Annotated[
        UploadFile,
        File(
            description="JSONL: prompt (or messages), a, b and answer (a, b, tie or both_bad), or prompt, chosen and "
            "rejected; up to 20 MiB"
        ),
    ],
):
    """Import gold comparisons, all or nothing; the error names the line."""
    ids = gold.import_gold(session=session, path=Path(file.filename or "gold.jsonl").name, data=file.file.read())
    return GoldImportPublic(created=len(ids), comparison_ids=ids)


@router.post(
    "/prompts/upload", response_model=PromptImportPublic, status_code=201, tags=["data"], max_body_size=UPLOAD_LIMIT
)
def upload_prompts(
    user: Engineer,
    session: DB,
    file: Annotated[
        UploadFile,
        File(description="JSONL (prompt or messages per line), CSV (a prompt column) or Parquet; up to 20 MiB"),
    ],
    tag: Annotated[list[str], Query(description="add this tag to every prompt")] = [],
):
    """Import a prompt file, all or nothing; the error names the line. The type is read from the file name."""
    name = Path(file.filename or "upload").name
    result = prompts.import_file(session=session, path=name, data=file.file.read(), tags=tag)
    return PromptImportPublic(created=result.created, skipped=result.skipped, ids=result.ids)


@router.get(
    "/export",
    tags=["data"],
    response_class=Response,
    responses={
        200: {
            "content": {"application/x-ndjson": {}, "application/vnd.apache.parquet": {}},
            "description": "prompt / chosen / rejected rows in TRL's conversational format",
        }
    },
)
def export(
    user: Engineer,
    session: DB,
    format: Literal["jsonl", "parquet"] = "jsonl",
    ties: Literal["drop", "keep"] = "drop",
    aggregate: Literal["majority", "none"] = "majority",
    exclude_flagged: bool = True,
    source: Annotated[
        list[Literal["queue", "arena", "written"]],
        Query(description="pairs of these comparison sources only (default: all)"),
    ] = [],
    labels: Annotated[
        str,
        Query(
            description="a comma list of human (people's votes), machine (a reward model's labels) and judge "
            "(AI judges' votes, once a judge has earned a label_p), or all; both = human,machine. A person's "
            "vote wins its pair; else the label with the highest label_p"
        ),
    ] = "human",
    margins: Annotated[
        bool,
        Query(description="also TRL's margin column on every row, from its strength (0 where none was said)"),
    ] = False,
) -> Response:
    """The preference dataset as a download: one row per comparison labelled by the majority of its
    votes (``aggregate=none``: one per vote); gold pairs, excluded and flagged raters left out."""
    # Written to a private temporary file as the rows are built, then sent from it: memory stays
    # flat whatever the number of votes, and the file goes when the response is sent.
    folder = Path(tempfile.mkdtemp(prefix="rlhf-export-"))
    path = folder / f"preferences.{format}"
    try:
        dataset.export(
            session=session,
            path=path,
            fmt=format,
            ties=ties,
            aggregate=aggregate,
            exclude_flagged=exclude_flagged,
            sources=source or None,
            labels=labels,
            margins=margins,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    media = "application/x-ndjson" if format == "jsonl" else "application/vnd.apache.parquet"
    return FileResponse(
        path,
        media_type=media,
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
