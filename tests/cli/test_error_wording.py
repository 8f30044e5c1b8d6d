"""A refused command says so in the command line's words: the flag to pass, the command to run first."""

import pytest
from sqlmodel import select

from rlhf.models import Checkpoint
from rlhf_cli import main as cli
from tests import factories


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``rlhf ARGS`` through the entry point, as a shell runs it: (exit code, stderr)."""
    monkeypatch.setattr("sys.argv", ["rlhf", *args])
    monkeypatch.setattr("rlhf.logging_setup.configure_logging", lambda *a, **k: None)  # keep pytest's handlers
    # Set here, so the entry point's defaults for these do not outlive the test.
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    with pytest.raises(SystemExit) as ended:
        cli.main()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err  # one line, no traceback
    return ended.value.code, err


def test_refusals_name_the_flags_and_commands(session, monkeypatch, capsys):
    code, err = run_cli(monkeypatch, capsys, "generate")
    assert code == 1 and "no serving checkpoint" in err and "`rlhf checkpoints serve ID`" in err
    code, err = run_cli(monkeypatch, capsys, "train", "dpo", "--set", "oops")
    assert code == 1 and "'oops'" in err and "(--set KEY=VALUE)" in err

    factories.comparisons(session, [("x", "y")], serve=True)
    session.commit()
    code, err = run_cli(monkeypatch, capsys, "train", "ppo")
    assert code == 1 and "ppo needs a reward model" in err
    assert "(--reward-model ID)" in err and "`rlhf train reward`" in err
    code, err = run_cli(monkeypatch, capsys, "generate", "--select", "uncertain")
    assert code == 1 and "(--select random)" in err and "`rlhf train reward`" in err
    (ckpt,) = session.exec(select(Checkpoint)).all()
    code, err = run_cli(monkeypatch, capsys, "checkpoints", "retire", str(ckpt.id))
    assert code == 1 and "last serving policy" in err and "(--force)" in err
    code, err = run_cli(monkeypatch, capsys, "simulate", "--rule", "shorter", "--noise", "2")
    assert code == 1 and "between 0 and 1 (--noise)" in err
