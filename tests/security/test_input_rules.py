"""Input rules that hold whatever way the input arrives (REST body, upload, CLI, UI form).

Found by an outside probe: JSON nested hundreds or thousands deep ended in a 500 (a
RecursionError while quoting the request back, or while reading a JSONL line); a CSV
with one unclosed quote silently merged the rest of the file into one prompt; tags took
NUL, empty strings and 5,000 characters while every other text field refuses NUL.
Each case is refused with a 4xx (REST) or an error naming the line, and nothing is stored.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import func, select
from typer.testing import CliRunner

from rlhf.errors import InvalidInput
from rlhf.input_rules import MAX_TAG_CHARS
from rlhf.models import Prompt
from rlhf.services.prompts import import_file, parse_file
from rlhf_cli.main import app as cli
from tests.api.conftest import bearer


def _count(session) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(Prompt)).one()


def _nested(depth: int, shape: str) -> str:
    if shape == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# --- JSON nested too deeply ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["array", "object"])
@pytest.mark.parametrize("depth", [500, 900])
def test_a_vote_nested_too_deeply_is_a_422_that_says_so(client, app, world, shape, depth):
    body = '{"comparison_id": %s, "choice": "a"}' % _nested(depth, shape)
    response = client.post(
        "/api/votes", headers={**bearer(app, world.users["rater"]), "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert "nested too deeply" in response.json()["detail"]


def test_a_vote_nested_past_what_json_can_read_is_still_a_4xx(client, app, world):
    body = '{"comparison_id": %s, "choice": "a"}' % _nested(5000, "array")
    response = client.post(
        "/api/votes", headers={**bearer(app, world.users["rater"]), "Content-Type": "application/json"}, content=body
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["detail"]


@pytest.mark.parametrize("depth", [100, 900, 5000])
def test_a_jsonl_line_nested_too_deeply_is_refused_naming_the_line(depth):
    data = b'{"prompt": "fine"}\n' + ('{"prompt": "x", "tags": %s}' % _nested(depth, "array")).encode() + b"\n"
    with pytest.raises(InvalidInput, match=r"deep\.jsonl line 2: .*nested too deeply"):
        parse_file("deep.jsonl", data)


@pytest.mark.parametrize("path", ["/api/prompts/upload", "/api/gold/upload"])
def test_a_nested_upload_is_a_422_naming_the_line_and_imports_nothing(client, app, world, session, path):
    before = _count(session)
    data = b'{"prompt": "q", "chosen": "x", "rejected": "y"}\n' + _nested(5000, "array").encode() + b"\n"
    response = client.post(path, headers=bearer(app, world.users["engineer"]), files={"file": ("deep.jsonl", data)})
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert "line 2" in response.json()["detail"] and "nested too deeply" in response.json()["detail"]
    assert _count(session) == before


def test_the_cli_refuses_a_nested_file_naming_the_line(session, tmp_path):
    f = tmp_path / "deep.jsonl"
    f.write_bytes(b'{"prompt": "fine"}\n' + _nested(5000, "object").encode() + b"\n")
    result = CliRunner().invoke(cli, ["prompts", "import", str(f)])
    assert isinstance(result.exception, InvalidInput), result.output
    assert "deep.jsonl line 2" in str(result.exception) and "nested too deeply" in str(result.exception)
    assert _count(session) == 0


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "x", "id": 1%s}' % ("0" * 5000), "unreadable JSON"),  # past Python's integer-string limit
        ('{"prompt": "x", "id": "%s"}' % ("i" * 257), "'id' longer than 256 characters"),  # wider than the column
        ('{"prompt": "x", "id": "a\\u0000b"}', "'id' contains a NUL character"),
    ],
    ids=["5000-digit-id", "id-too-wide", "nul-in-id"],
)
def test_an_id_nothing_can_store_is_refused_naming_the_line(line, message):
    with pytest.raises(InvalidInput, match=f"ids.jsonl line 2: {message}"):
        parse_file("ids.jsonl", b'{"prompt": "fine"}\n' + line.encode())


def test_a_gold_response_that_is_not_unicode_is_refused_naming_the_line(session):
    from rlhf.services.gold import import_gold

    data = b'{"prompt": "q", "chosen": "fine", "rejected": "\\ud800"}\n'
    with pytest.raises(InvalidInput, match="g.jsonl line 1: 'rejected' is not valid Unicode"):
        import_gold(session=session, path="g.jsonl", data=data)
    session.rollback()
    assert _count(session) == 0


# --- CSV with a quote never closed -----------------------------------------------------------------

STRAY = [
    # (file, the line the unclosed quoted field opens on)
    ('prompt\nqa csv 1\n"qa csv 2 stray quote\nqa csv 3\nqa csv 4\n', 3),
    ('prompt\r\nqa csv 1\r\n"qa csv 2 stray quote\r\nqa csv 3\r\nqa csv 4\r\n', 3),
    ('prompt,id\n"a\nquoted, two-line prompt",1\n\nok,2\nfine,"3\nlast,4\n', 6),
    ('prompt\n"unclosed at the start\nfine\n', 2),
    ('prompt,tags\nfine,"x,y"\n"two\nlines",z\nok,"t\n', 5),
    ('prompt\nfine\n"stray\n' + "more text\n" * 20_000, 3),  # past the reader's field size limit
]


@pytest.mark.parametrize(
    "text, line",
    STRAY,
    ids=["probe", "crlf", "after-a-multi-line-field", "first-row", "second-column", "past-the-field-size-limit"],
)
def test_a_csv_quote_never_closed_refuses_the_file_naming_the_line_it_opens_on(text, line):
    with pytest.raises(InvalidInput) as refused:
        parse_file("stray.csv", text.encode())
    assert f"stray.csv line {line}:" in str(refused.value) and "never closed" in str(refused.value)


@pytest.mark.parametrize(
    "text, line",
    [
        ('"prompt\nfine\n', 1),  # the header itself
        ('prompt\nfine\n"quoted" then more\nok\n', 3),  # text after a closing quote: the reader's own error
    ],
)
def test_other_broken_quoting_names_its_line(text, line):
    with pytest.raises(InvalidInput, match=f"broken.csv line {line}: "):
        parse_file("broken.csv", text.encode())


def test_a_csv_with_a_stray_quote_imports_nothing(session):
    with pytest.raises(InvalidInput, match="line 3"):
        import_file(session=session, path="stray.csv", data=STRAY[0][0].encode())
    session.rollback()
    assert _count(session) == 0


def test_multi_line_prompts_in_quoted_csv_fields_still_import(session):
    data = 'prompt,id,tags\n"first line\nsecond line",m1,"a,b"\n"say ""hi""\n\nthen stop",m2,\nplain,m3,\n'
    result = import_file(session=session, path="multi.csv", data=data.encode())
    assert result.created == 3
    texts = [p.messages[-1]["content"] for p in session.exec(select(Prompt).order_by(Prompt.id))]
    assert texts == ["first line\nsecond line", 'say "hi"\n\nthen stop', "plain"]


# --- tags: the same text rules as every other field, and a length limit ----------------------------

BAD_TAGS = [
    ("", "empty"),
    ("   ", "empty"),
    ("a\x00b", "NUL"),
    ("x" * (MAX_TAG_CHARS + 1), str(MAX_TAG_CHARS)),
    ("x" * 5000, str(MAX_TAG_CHARS)),
]
BAD_TAG_IDS = ["empty", "blank", "nul", "one-too-long", "5000"]


def _parquet(rows: list[dict]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


@pytest.mark.parametrize("tag, reason", BAD_TAGS, ids=BAD_TAG_IDS)
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_bad_tag_in_a_file_is_refused_naming_the_line(fmt, tag, reason):
    rows = [{"prompt": "fine", "tags": ["ok"]}, {"prompt": "also fine", "tags": ["ok", tag]}]
    if fmt == "jsonl":
        data, where = "\n".join(json.dumps(r) for r in rows).encode(), "tags.jsonl line 2"
    else:
        data, where = _parquet(rows), "tags.parquet row 2"
    with pytest.raises(InvalidInput) as refused:
        parse_file(f"tags.{fmt}", data)
    assert str(refused.value).startswith(f"{where}: ") and reason in str(refused.value)


@pytest.mark.parametrize(
    "tag, reason", [("a\x00b", "NUL"), ("x" * (MAX_TAG_CHARS + 1), str(MAX_TAG_CHARS))], ids=["nul", "too-long"]
)
def test_a_bad_tag_in_a_csv_is_refused_naming_the_line(tag, reason):
    data = f'prompt,tags\nfine,ok\nalso fine,"ok,{tag}"\n'.encode()
    with pytest.raises(InvalidInput) as refused:
        parse_file("tags.csv", data)
    assert str(refused.value).startswith("tags.csv line 3: ") and reason in str(refused.value)


def test_a_tag_at_the_limit_imports_trimmed(session):
    longest = "t" * MAX_TAG_CHARS
    data = json.dumps({"prompt": "fine", "tags": [longest, "  spaced  "]}).encode()
    assert import_file(session=session, path="ok.jsonl", data=data, tags=[" extra "]).created == 1
    assert session.exec(select(Prompt)).one().tags == sorted([longest, "spaced", "extra"])


@pytest.mark.parametrize("tag, reason", BAD_TAGS, ids=BAD_TAG_IDS)
def test_a_bad_tag_for_the_whole_import_is_refused_and_imports_nothing(session, tag, reason):
    with pytest.raises(InvalidInput, match=reason):
        import_file(session=session, path="ok.jsonl", data=b'{"prompt": "fine"}\n', tags=["ok", tag])
    session.rollback()
    assert _count(session) == 0


@pytest.mark.parametrize("where", ["body", "query"])
@pytest.mark.parametrize("tag, reason", BAD_TAGS[:4], ids=BAD_TAG_IDS[:4])
def test_a_bad_tag_over_rest_is_a_422_and_stores_nothing(client, app, world, session, where, tag, reason):
    before = _count(session)
    headers = bearer(app, world.users["engineer"])
    if where == "body":
        response = client.post("/api/prompts", headers=headers, json=[{"prompt": "fine", "tags": [tag]}])
    else:
        response = client.post("/api/prompts", headers=headers, params={"tag": tag}, json=[{"prompt": "fine"}])
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert response.json()["error"] == "InvalidInput" and reason in response.json()["detail"]
    if where == "body":
        assert response.json()["detail"].startswith("item 0: ")
    upload = client.post(
        "/api/prompts/upload",
        headers=headers,
        params={"tag": tag},
        files={"file": ("p.jsonl", b'{"prompt": "fine"}\n')},
    )
    assert upload.status_code == 422 and reason in upload.json()["detail"]
    assert _count(session) == before


def test_the_cli_refuses_a_bad_tag(session, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "fine"}\n')
    result = CliRunner().invoke(cli, ["prompts", "import", str(f), "--tag", " "])
    assert isinstance(result.exception, InvalidInput) and "empty" in str(result.exception), result.output
    assert _count(session) == 0
