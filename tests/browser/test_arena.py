"""The Arena tab in a real browser, on the real embedded engine (``transformers serve`` started by the app).

A rater types a prompt, votes with a shortcut, sees the names, continues a second turn,
votes again and writes a better answer; the database, the Rate queue, the SFT and
preference exports and TRL's trainers then see exactly that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from sqlmodel import select

from rlhf.models import Comparison, ComparisonSource, Demonstration, Prompt, User, Vote
from rlhf.services.checkpoints import register_checkpoint
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, ROOT, login, screenshot

pytestmark = pytest.mark.integration


def _open_arena(page, server):
    login(page, server, "rita")
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-prompt textarea").wait_for()


def _battle(page, text: str, key: str, check_buttons: bool = False) -> None:
    page.locator("#arena-prompt textarea").fill(text)
    page.locator("#arena-send").click()
    page.locator("#arena-vote-a").wait_for(state="visible", timeout=120_000)
    if check_buttons:  # the Rate tab's labels, with their keys drawn beside them
        for label, elem, shortcut in (
            ("A is better", "a", "1"),
            ("B is better", "b", "2"),
            ("Tie", "tie", "3"),
            ("Both bad", "bad", "4"),
        ):
            button = page.locator(f"#arena-vote-{elem}")
            assert button.inner_text().strip() == label
            assert button.evaluate("e => getComputedStyle(e, '::after').content") == f'"{shortcut}"'
    page.locator("body").click(position={"x": 5, "y": 5})  # keys act only outside the text boxes
    page.keyboard.press(key)
    page.locator("#arena-names").get_by_text("A was").wait_for()


def _seed(server, tiny_model_dir, tmp_path):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        for name in ("alpha", "beta"):
            path = tmp_path / name
            shutil.copytree(tiny_model_dir, path)
            register_checkpoint(session=s, path=str(path), name=name, serve=True)


def test_a_rater_battles_continues_and_writes_a_better_answer(server, new_page, tiny_model_dir, tmp_path):
    _seed(server, tiny_model_dir, tmp_path)
    page = new_page(DESKTOP)
    _open_arena(page, server)
    _battle(page, "Name a colour.", "1", check_buttons=True)
    names = page.locator("#arena-names").inner_text()
    assert "alpha" in names or "beta" in names
    screenshot(page, "arena-after-vote")
    first_a = page.locator("#arena-a .rl-card-body").inner_text()
    page.locator("#arena-continue").click()  # carries A, the winner, forward
    page.locator("#arena-history").get_by_text("Name a colour.").wait_for()
    _battle(page, "Why that one?", "2")
    page.locator("#arena-write").click()
    page.locator("#arena-from-b").click()  # starts from B's answer, which the rater then rewrites
    second_b = page.locator("#arena-b .rl-card-body").inner_text().strip()
    page.wait_for_function("t => document.querySelector('#arena-written textarea').value.trim() === t", arg=second_b)
    page.locator("#arena-written textarea").fill("Blue, because the sky is blue.")
    page.locator("#arena-save").click()
    page.locator("#arena-status").get_by_text("Saved your answer").wait_for()
    screenshot(page, "arena-after-writing")

    with server.session() as s:
        rita = s.exec(select(User).where(User.name == "rita")).one()
        battles = s.exec(
            select(Comparison).where(Comparison.source == ComparisonSource.arena).order_by(Comparison.id)
        ).all()
        assert len(battles) == 2
        second_prompt = s.get(Prompt, battles[1].prompt_id).messages
        assert [m["role"] for m in second_prompt] == ["user", "assistant", "user"]
        assert second_prompt[1]["content"].strip() == first_a.strip()
        arena_votes = s.exec(
            select(Vote)
            .join(Comparison, Comparison.id == Vote.comparison_id)
            .where(Comparison.source == ComparisonSource.arena)
        ).all()
        assert sorted(v.choice.value for v in arena_votes) == ["a", "b"] and {v.rater_id for v in arena_votes} == {
            rita.id
        }
        demos = s.exec(select(Demonstration)).all()
        assert len(demos) == 1 and demos[0].messages == second_prompt
    # Neither battle is ever handed out in the Rate tab.
    page.get_by_role("tab", name="Rate").click()
    page.get_by_text("Nothing left to rate.").wait_for()

    env = {
        **os.environ,
        "RLHF_DATA_DIR": str(server.data_dir),
        "RLHF_DATABASE_URL": server.database_url,
        "PYTHONPATH": str(ROOT),
        "RLHF_SECRET_KEY": "browser-test-secret-key",
    }
    sft, prefs = tmp_path / "sft.jsonl", tmp_path / "prefs.jsonl"
    for path, kind in ((sft, "sft"), (prefs, "preference")):
        subprocess.run(
            [sys.executable, "-m", "rlhf_cli.main", "export", str(path), "--kind", kind],
            env=env,
            check=True,
            capture_output=True,
        )
    sft_rows = [json.loads(line) for line in sft.read_text().splitlines()]
    assert len(sft_rows) == 1
    assert sft_rows[0]["messages"] == [
        *second_prompt,
        {"role": "assistant", "content": "Blue, because the sky is blue."},
    ]
    pref_rows = [json.loads(line) for line in prefs.read_text().splitlines()]
    assert {r["source"] for r in pref_rows} >= {"arena", "written"}
    _train_with_trl(tiny_model_dir, sft_rows, pref_rows, tmp_path)


def _train_with_trl(model_dir, sft_rows, pref_rows, tmp_path):
    """TRL's own trainers accept the exports as written (a couple of steps each)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    common = {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "save_strategy": "no",
        "logging_steps": 1,
    }
    sft = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        processing_class=tokenizer,
        args=SFTConfig(output_dir=str(tmp_path / "sft"), **common),
        train_dataset=Dataset.from_list([{"messages": r["messages"]} for r in sft_rows]),
    )
    assert sft.train().training_loss > 0
    dpo = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        processing_class=tokenizer,
        args=DPOConfig(output_dir=str(tmp_path / "dpo"), **common),
        train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in pref_rows]),
    )
    assert dpo.train().training_loss > 0


def test_engineers_see_arena_counts_browse_demonstrations_and_promote_prompts(server, new_page):
    from rlhf.inference.client import Completion
    from rlhf.services import arena
    from rlhf.services.demonstrations import record_demonstration
    from rlhf.services.prompts import list_prompts
    from rlhf.settings import Settings

    with server.session() as s:
        rita = factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        register_checkpoint(session=s, path="org/one", name="one", serve=True)
        plan = arena.plan_battle(
            session=s,
            rater=rita,
            messages=[{"role": "user", "content": "Name a fruit."}],
            settings=Settings(secret_key="x" * 20),
        )
        comp = arena.store_battle(
            session=s, rater=rita, plan=plan, ttl_s=60, answers=(Completion("Apple.", True), Completion("Pear.", True))
        )
        record_demonstration(session=s, rater=rita, comparison_id=comp.id, text="A ripe mango.")
        prompt_id = comp.prompt_id
    page = new_page(DESKTOP)
    login(page, server, "erin")
    page.get_by_role("tab", name="Console").click()
    page.get_by_text("Arena and demonstrations").click()
    page.locator("#arena-counts").get_by_text("1 open").wait_for()
    assert "1 demonstrations" in page.locator("#arena-counts").inner_text()
    page.wait_for_function("() => document.querySelector('#demonstrations-table').innerText.includes('A ripe mango.')")
    page.locator("#promote-ids textarea, #promote-ids input").first.fill(str(prompt_id))
    page.get_by_role("button", name="Promote into the prompt pool").click()
    page.get_by_text("1 prompts are in the pool now.").wait_for()
    with server.session() as s:
        assert [p.id for p in list_prompts(session=s)] == [prompt_id]
