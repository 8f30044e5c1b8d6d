"""``rlhf serve --workers N``: refused, with the reason, where several processes would not be safe."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from rlhf.settings import reset_settings_cache
from rlhf_cli import web

# Nothing listens here: a refusal must come before the command waits for the database.
NOWHERE_PG = "postgresql+psycopg://rlhf@127.0.0.1:1/rlhf"
COMPLETE = {
    "RLHF_DATABASE_URL": NOWHERE_PG,
    "RLHF_BROKER_URL": "redis://127.0.0.1:1/0",
    "RLHF_INFERENCE_URL": "http://127.0.0.1:1",
}


@pytest.fixture
def serve(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RLHF_SECRET_KEY", "test-secret-key-not-for-production")
    app = typer.Typer()
    web.register(app)

    def run(env: dict[str, str], *args: str):
        for key in COMPLETE:
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_settings_cache()
        try:
            return CliRunner().invoke(app, ["serve", *args])
        finally:
            reset_settings_cache()

    return run


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("RLHF_DATABASE_URL", "RLHF_DATABASE_URL is SQLite"),
        ("RLHF_BROKER_URL", "RLHF_BROKER_URL is not set"),
        ("RLHF_INFERENCE_URL", "RLHF_INFERENCE_URL is not set"),
    ],
)
def test_two_workers_without_one_requirement_are_refused_naming_it(serve, missing, named):
    env = {k: v for k, v in COMPLETE.items() if k != missing}  # no RLHF_DATABASE_URL: SQLite in the data dir
    result = serve(env, "--workers", "2")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "error: rlhf serve --workers 2 refused:"
    assert len(lines) == 2 and named in lines[1], result.output  # only what is missing, with its reason


def test_a_bare_laptop_setup_hears_every_reason_at_once(serve):
    result = serve({}, "--workers", "3")
    assert result.exit_code == 2
    for named in ("SQLite", "RLHF_BROKER_URL", "RLHF_INFERENCE_URL"):
        assert named in result.output


def test_ports_past_the_last_are_refused(serve):
    result = serve(COMPLETE, "--workers", "2", "--port", "65535")
    assert result.exit_code == 2
    assert "past 65535" in result.output


class _WaitedForDatabase(Exception):
    pass


def test_one_process_keeps_the_laptop_mode(serve, monkeypatch):
    # --workers 1 (the default) needs none of it: the command goes on to wait for its SQLite database.
    def wait_for_database(url: str) -> None:
        raise _WaitedForDatabase(url)

    monkeypatch.setattr(web.db, "wait_for_database", wait_for_database)
    result = serve({}, "--workers", "1")
    assert isinstance(result.exception, _WaitedForDatabase), result.output
    assert str(result.exception).startswith("sqlite:")
