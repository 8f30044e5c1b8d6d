"""``rlhf judges add|list|show`` and ``rlhf judge run``: a judge registered from the command line votes
through a real OpenAI-compatible server, and its audit against people is shown with its counts."""

from __future__ import annotations

import json

from sqlmodel import select
from typer.testing import CliRunner

from rlhf.models import Checkpoint, JobStatus, Judge, JudgeJob, Vote, VoteKind
from rlhf.services.votes import record_vote
from rlhf_cli.main import app
from tests import factories
from tests.cli.test_error_wording import run_cli
from tests.judge_server import JudgeServer

TEMPLATE = "Question: {{ prompt }}\nA: {{ a }}\nB: {{ b }}\nSay [[A]], [[B]] or [[C]]."


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_add_list_and_show_in_text_and_json(session, tmp_path):
    template = tmp_path / "judge.j2"
    template.write_text(TEMPLATE)
    added = invoke(
        "judges", "add", "gpt", "--url", "http://127.0.0.1:9/v1", "--model", "gpt-4o-mini",
        "--api-key-env", "JUDGE_KEY", "--template", str(template), "--no-swap", "--concurrency", "2",
        "--timeout", "30", "--audit-rate", "0.25",
    )  # fmt: skip
    assert "judge gpt registered with id" in added.output
    stored = session.exec(select(Judge)).one()
    assert (stored.template, stored.swap, stored.concurrency, stored.timeout_s, stored.audit_rate) == (
        TEMPLATE,
        False,
        2,
        30.0,
        0.25,
    )
    factories.comparisons(session, [("x", "y")], serve=True)
    ckpt_id = session.exec(select(Checkpoint.id)).one()
    invoke("judges", "add", "local", "--checkpoint", str(ckpt_id))

    listed = invoke("judges", "list").output
    assert "gpt" in listed and "http://127.0.0.1:9/v1 (gpt-4o-mini)" in listed and f"checkpoint {ckpt_id}" in listed
    rows = json.loads(invoke("judges", "list", "--json").stdout)
    assert [r["name"] for r in rows] == ["gpt", "local"]
    assert rows[0]["api_key_env"] == "JUDGE_KEY" and rows[1]["checkpoint_id"] == ckpt_id
    assert (rows[0]["audit"]["votes"], rows[0]["audit"]["label_p"]) == (0, None)

    shown = invoke("judges", "show", "gpt").output
    assert "key from $JUDGE_KEY" in shown and "one order, concurrency 2, timeout 30 s, audit rate 0.25" in shown
    assert "template                 its own" in shown
    assert "label_p                  none: only 0 pairs voted by both people and the judge" in shown
    detail = json.loads(invoke("judges", "show", "local", "--json").stdout)
    assert detail["checkpoint_id"] == ckpt_id and detail["audit"]["overlap"] == 0


def test_refusals_exit_1_and_name_the_problem(session, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere.j2"
    code, err = run_cli(monkeypatch, capsys, "judges", "add", "j", "--url", "http://h", "--model", "m",
                        "--template", str(missing))  # fmt: skip
    assert code == 1 and f"{missing}: no such file (--template)" in err
    no_b = tmp_path / "no_b.j2"
    no_b.write_text("A: {{ a }}\nSay [[A]], [[B]] or [[C]].")
    code, err = run_cli(monkeypatch, capsys, "judges", "add", "j", "--url", "http://h", "--model", "m",
                        "--template", str(no_b))  # fmt: skip
    assert code == 1 and "{{ b }}" in err and "(--template)" in err
    code, err = run_cli(monkeypatch, capsys, "judges", "add", "j", "--url", "http://h", "--model", "m",
                        "--timeout", "0")  # fmt: skip
    assert code == 1 and "(--timeout)" in err
    code, err = run_cli(monkeypatch, capsys, "judges", "add", "j", "--checkpoint", "404")
    assert code == 1 and "404" in err
    assert session.exec(select(Judge)).all() == []

    invoke("judges", "add", "j", "--url", "http://h", "--model", "m")
    code, err = run_cli(monkeypatch, capsys, "judges", "add", "j", "--url", "http://h", "--model", "m")
    assert code == 1 and "already exists" in err
    code, err = run_cli(monkeypatch, capsys, "judge", "run", "j", "--source", "mars")
    assert code == 1 and "(--source)" in err
    code, err = run_cli(monkeypatch, capsys, "judges", "show", "nobody")
    assert code == 1 and "no judge 'nobody'" in err
    session.expire_all()
    assert session.exec(select(JudgeJob)).all() == []


def test_judge_run_wait_stores_votes_and_show_counts_them(session):
    comps = factories.comparisons(
        session,
        [
            ("Sure, please see below.", "No."),  # the judge says a
            ("No.", "Yes please."),  # b
            ("One.", "Two."),  # a tie: neither says please
            ("please one", "please two"),  # a tie: both do
            ("please, open", "closed"),  # a, on a pair nobody voted on
        ],
    )
    person = factories.user(session, name="person")
    for comp, choice in zip(comps, ["a", "a", "b"]):  # agrees on the first, not the next two
        record_vote(session=session, rater=person, comparison_id=comp.id, choice=choice, as_shown=False)
    session.commit()

    with JudgeServer() as server:
        invoke("judges", "add", "polite", "--url", server.url, "--model", "judge-1")
        ran = invoke("judge", "run", "polite", "--wait")
        assert server.answered == 10  # five pairs, in both orders
    assert "judged 5 pairs: 5 votes (a 2, b 1, tie 2), 0 inconsistent, 0 unparseable" in ran.stdout

    session.expire_all()
    votes = session.exec(select(Vote).where(Vote.kind == VoteKind.judge).order_by(Vote.comparison_id)).all()
    assert [v.choice.value for v in votes] == ["a", "b", "tie", "tie", "a"]
    assert session.exec(select(JudgeJob)).one().status is JobStatus.succeeded

    a = json.loads(invoke("judges", "show", "polite", "--json").stdout)["audit"]
    assert (a["votes"], a["overlap"], a["agreement_pairs"], a["agreement_without_ties_pairs"]) == (5, 3, 3, 2)
    assert (a["agreement"], a["agreement_without_ties"]) == (round(1 / 3, 4), 0.5)
    assert (a["position_consistency"], a["judged_both_orders"], a["inconsistent"]) == (1.0, 5, 0)
    assert a["label_p"] is None and "only 3 pairs" in a["reason"]
    text = invoke("judges", "show", "polite").output
    assert "0.333 on 3 pairs voted by both people and the judge" in text
    assert "1.000 on 5 pairs judged in both orders" in text

    again = json.loads(invoke("judge", "run", "polite", "--wait", "--json").stdout)
    assert again["status"] == "succeeded" and again["result"]["pairs_judged"] == 0  # nothing left it has not judged
