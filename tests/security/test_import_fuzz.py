"""Generated prompt files, valid and corrupted: all of it imports, or a clear error and nothing.

Hypothesis writes JSONL and CSV files line by line, each line either a valid record or
one broken in a known way (not JSON, no prompt, an empty or too long prompt, a NUL,
wrong types, bytes that are not UTF-8), with text from all of Unicode. The import must
either store every record, or refuse with an error naming the first bad line and store
nothing at all.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from rlhf.errors import InvalidInput
from rlhf.input_rules import MAX_TAG_CHARS
from rlhf.models import Prompt
from rlhf.services.prompts import MAX_PROMPT_CHARS, import_file

pytestmark = pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)
EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Any character a file may hold (no lone surrogates: they cannot be written as UTF-8).
text = st.text(st.characters(codec="utf-8"), max_size=40)
prompt_text = text.filter(lambda t: t.strip() and "\x00" not in t)
tag_text = prompt_text  # at most 40 characters, well within MAX_TAG_CHARS


def _count(session) -> int:
    return session.exec(select(func.count()).select_from(Prompt)).one()


@st.composite
def jsonl_line(draw, index: int):
    """(bytes of one line, None if valid else the reason it is not)."""
    kind = draw(
        st.sampled_from(
            ["prompt", "messages", "blank"] * 3
            + [
                "not json",
                "no prompt",
                "empty prompt",
                "nul",
                "too long",
                "bad id",
                "bad tags",
                "bad role",
                "assistant last",
                "not utf-8",
                "not an object",
                "lone surrogate",
                "bad tag",
            ]
        )
    )
    tags = draw(st.lists(tag_text, max_size=2))
    if kind == "prompt":
        record = {"prompt": draw(prompt_text), "id": f"id-{index}", "tags": tags}
    elif kind == "messages":
        record = {"messages": [{"role": "system", "content": draw(text)}, {"role": "user", "content": draw(text)}]}
        if "\x00" in record["messages"][0]["content"] + record["messages"][1]["content"]:
            kind = "nul"
    elif kind == "blank":
        return draw(st.sampled_from([b"", b"   ", b"\t"])), None
    elif kind == "not json":
        return b"{" + draw(text).replace("\n", " ").replace("\r", " ").encode(), kind
    elif kind == "no prompt":
        record = {"text": draw(text)}
    elif kind == "empty prompt":
        record = {"prompt": draw(st.sampled_from(["", " ", "\n\t"]))}
    elif kind == "nul":
        record = {"prompt": draw(text) + "\x00" + draw(text)}
    elif kind == "too long":
        record = {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}
    elif kind == "bad id":
        record = {"prompt": draw(prompt_text), "id": draw(st.sampled_from([[1], {"a": 1}, 1.5, True]))}
    elif kind == "bad tag":
        tag = draw(st.sampled_from(["", " ", "a\x00", "x" * (MAX_TAG_CHARS + 1)]))
        record = {"prompt": draw(prompt_text), "tags": [draw(tag_text), tag]}
    elif kind == "bad tags":
        record = {"prompt": draw(prompt_text), "tags": draw(st.sampled_from([[1], {"a": "b"}, 3]))}
    elif kind == "bad role":
        record = {"messages": [{"role": draw(st.sampled_from(["bot", "", None])), "content": "hi"}]}
    elif kind == "assistant last":
        record = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    elif kind == "lone surrogate":  # valid JSON, but not text anything can store
        return json.dumps({"prompt": draw(text) + chr(draw(st.integers(0xD800, 0xDFFF)))}).encode(), kind
    elif kind == "not utf-8":
        return json.dumps({"prompt": "caf"}).encode()[:-2] + b'\xe9"}', kind
    else:
        record = draw(st.sampled_from([[1, 2], "prompt", 3, None]))
    # Both spellings occur in real files: escaped, or raw UTF-8 (ensure_ascii=False).
    raw = json.dumps(record, ensure_ascii=draw(st.booleans()))
    return raw.encode(), (None if kind in ("prompt", "messages") else kind)


@st.composite
def jsonl_file(draw):
    n = draw(st.integers(1, 12))
    lines = [draw(jsonl_line(i)) for i in range(n)]
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    return newline.join(line for line, _ in lines) + draw(st.sampled_from([b"", newline])), lines


def _expect_refusal(session, path, data, before, line_no):
    with pytest.raises(InvalidInput) as refused:
        import_file(session=session, path=path, data=data)
    assert f"line {line_no}" in str(refused.value) or (line_no is None and "no prompts" in str(refused.value)), (
        str(refused.value),
        line_no,
    )
    session.rollback()
    assert _count(session) == before, "a refused import must store nothing"


def test_generated_jsonl_imports_whole_or_not_at_all(session):
    ran = []

    @FUZZ
    @given(generated=jsonl_file())
    def check(generated):
        data, lines = generated
        ran.append(1)
        before = _count(session)
        bad = next((i + 1 for i, (_, why) in enumerate(lines) if why), None)
        records = sum(1 for line, why in lines if why is None and line.strip())
        if bad is not None or records == 0:
            _expect_refusal(session, "fuzz.jsonl", data, before, bad)
            return
        result = import_file(session=session, path="fuzz.jsonl", data=data)
        assert result.created == records and _count(session) == before + records
        session.rollback()

    check()
    print(f"JSONL import fuzz: {len(ran)} generated files")
    assert len(ran) >= EXAMPLES


@st.composite
def csv_file(draw):
    """(bytes, 1-based line of the first bad row or None, valid rows)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["prompt", "id", "tags"])
    first_bad, valid = None, 0
    for i in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["ok"] * 4 + ["empty", "blank", "too long"]))
        prompt = {
            "ok": draw(prompt_text),
            "empty": "",
            "blank": draw(st.sampled_from([" ", "\t"])),
            "too long": "y" * (MAX_PROMPT_CHARS + 1),
        }[kind]
        prompt = prompt.replace("\x00", "")  # the csv module itself refuses NUL (tested below)
        if kind == "ok" and not prompt.strip():
            kind = "blank"
        writer.writerow([prompt, f"c{i}", ",".join(t.replace(",", "") for t in draw(st.lists(tag_text, max_size=2)))])
        if kind == "ok":
            valid += 1
        elif first_bad is None:
            first_bad = out.getvalue().count("\n")  # the csv reader names the line a row ends on
    return out.getvalue().encode(), first_bad, valid


def test_generated_csv_imports_whole_or_not_at_all(session):
    ran = []

    @FUZZ
    @given(generated=csv_file(), corrupt_at=st.none() | st.integers(0, 10_000))
    def check(generated, corrupt_at):
        data, bad, valid = generated
        ran.append(1)
        before = _count(session)
        if corrupt_at is not None:  # one byte that is not UTF-8, somewhere after the header
            header = data.index(b"\n") + 1
            at = header + corrupt_at % max(1, len(data) - header)
            data = data[:at] + b"\xff" + data[at:]
            line = data[:at].count(b"\n") + 1
            with pytest.raises(InvalidInput, match=f"line {line}: not valid UTF-8"):
                import_file(session=session, path="fuzz.csv", data=data)
            assert _count(session) == before
            return
        if bad is not None:
            _expect_refusal(session, "fuzz.csv", data, before, bad)
            return
        result = import_file(session=session, path="fuzz.csv", data=data)
        assert result.created == valid and _count(session) == before + valid
        session.rollback()

    check()
    print(f"CSV import fuzz: {len(ran)} generated files")
    assert len(ran) >= EXAMPLES


def test_a_nul_byte_in_a_csv_names_its_line(session):
    data = b"prompt\nfine\nbad\x00 row\n"
    _expect_refusal(session, "nul.csv", data, _count(session), 3)
