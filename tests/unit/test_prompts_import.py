import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import func, select

from rlhf.errors import InvalidInput
from rlhf.models import Prompt
from rlhf.services.prompts import import_file


def _count(session):
    return session.exec(select(func.count()).select_from(Prompt)).one()


def test_jsonl_with_prompt_messages_ids_and_tags(session, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps({"id": "q1", "prompt": "What is red?", "tags": ["colours"]}),
                "",
                json.dumps(
                    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
                ),
            ]
        )
    )
    result = import_file(session=session, path=f)
    assert result.created == 2
    prompts = session.exec(select(Prompt).order_by(Prompt.id)).all()
    assert prompts[0].messages == [{"role": "user", "content": "What is red?"}]
    assert prompts[0].external_id == "q1" and prompts[0].tags == ["colours"]
    assert prompts[1].messages[0]["role"] == "system"


def test_reimport_with_same_ids_does_not_duplicate(session, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "q1", "prompt": "a"}) + "\n" + json.dumps({"id": "q2", "prompt": "b"}) + "\n")
    import_file(session=session, path=f)
    again = import_file(session=session, path=f)
    assert (again.created, again.skipped) == (0, 2)
    assert _count(session) == 2


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "line 3: invalid JSON"),
        (json.dumps({"text": "no prompt field"}), "line 3: missing 'prompt'"),
        (json.dumps({"prompt": ""}), "line 3: 'prompt' must be a non-empty string"),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "x"}]}),
            "line 3: the last message must be from the user",
        ),
        (json.dumps({"prompt": "x", "tags": "a,b", "id": {"x": 1}}), "line 3: 'id' must be"),
    ],
)
def test_malformed_jsonl_names_the_line_and_imports_nothing(session, tmp_path, bad_line, message):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": "fine too"}) + "\n" + bad_line + "\n")
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        import_file(session=session, path=f)
    assert _count(session) == 0


def test_csv_needs_prompt_column_and_reports_row_line(session, tmp_path):
    good = tmp_path / "p.csv"
    good.write_text('prompt,id,tags\n"Hello, there",h1,"x,y"\nBye,,\n')
    assert import_file(session=session, path=good).created == 2
    assert session.exec(select(Prompt).where(Prompt.external_id == "h1")).one().tags == ["x", "y"]
    bad = tmp_path / "bad.csv"
    bad.write_text("question\nwhat\n")
    with pytest.raises(InvalidInput, match="line 1: a CSV needs a 'prompt' column"):
        import_file(session=session, path=bad)
    empty_cell = tmp_path / "empty.csv"
    empty_cell.write_text('prompt\nok\n""\n')
    with pytest.raises(InvalidInput, match="line 3"):
        import_file(session=session, path=empty_cell)
    assert _count(session) == 2


def test_parquet(session, tmp_path):
    f = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "one"}, {"prompt": "two"}]), f)
    assert import_file(session=session, path=f).created == 2
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        import_file(session=session, path=bad)


def test_unknown_extension_and_invalid_utf8(session, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("hello")
    with pytest.raises(InvalidInput, match="unsupported file type"):
        import_file(session=session, path=f)
    g = tmp_path / "p.jsonl"
    g.write_bytes(b'{"prompt": "ok"}\n{"prompt": "\xff"}\n')
    with pytest.raises(InvalidInput, match="line 2: not valid UTF-8"):
        import_file(session=session, path=g)


def test_a_refused_import_names_the_first_twenty_bad_lines_and_counts_them_all(session):
    lines = [json.dumps({"prompt": f"fine {i}"}) if i % 2 else "{not json" for i in range(1, 53)]
    data = "\n".join(lines).encode()  # 26 bad lines: 2, 4, ..., 52
    with pytest.raises(InvalidInput) as refused:
        import_file(session=session, path="many.jsonl", data=data)
    text = str(refused.value)
    assert text.startswith("many.jsonl: 26 bad lines, nothing imported.")
    assert all(f"many.jsonl line {n}:" in text for n in range(2, 41, 2))
    assert "many.jsonl line 42:" not in text and text.endswith("and 6 more")
    assert session.exec(select(func.count()).select_from(Prompt)).one() == 0


def test_gold_import_names_every_bad_line_too(session):
    from rlhf.services.gold import import_gold

    data = b'{"prompt": "q", "chosen": "x", "rejected": "x"}\n[1]\n{"prompt": "q", "chosen": "4", "rejected": "5"}\n'
    with pytest.raises(InvalidInput) as refused:
        import_gold(session=session, path="g.jsonl", data=data)
    assert "2 bad lines" in str(refused.value)
    assert "g.jsonl line 1: the two responses are the same" in str(refused.value)
    assert "g.jsonl line 2: expected an object" in str(refused.value)
