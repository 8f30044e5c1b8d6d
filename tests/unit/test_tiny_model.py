"""The tiny offline chat model behaves like a small real checkpoint.

Later stages (generation jobs, reward models, DPO, PPO) rely on what is checked here:
it loads with the Auto classes, its chat template ends the assistant turn at
``<|im_end|>``, its samples stop on their own and differ in length, and a marker word
appears in some samples but not all, so a preference for it has something to select.
"""

from __future__ import annotations

import json
import re
import statistics

import pytest

from rlhf.modeling.tiny import PROMPTS_PATH, build_tiny_model

IM_END = "<|im_end|>"


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    """The session's tiny model (built once, in conftest), loaded as any checkpoint would be."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def _sample(model, tokenizer, n: int, seed: int = 0) -> tuple[list[str], list[bool], list[int]]:
    """Sample ``n`` answers to the shipped prompts; return texts, ended-with-EOS flags, lengths."""
    import torch

    prompts = [json.loads(line)["prompt"] for line in PROMPTS_PATH.read_text().splitlines()][:n]
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**batch)
    answers, ended, lengths = [], [], []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        stop = tokenizer.eos_token_id in row
        row = row[: row.index(tokenizer.eos_token_id)] if stop else row
        answers.append(tokenizer.decode(row, skip_special_tokens=True))
        ended.append(stop)
        lengths.append(len(row))
    return answers, ended, lengths


def test_loads_with_auto_classes(loaded, tiny_model_dir):
    model, tokenizer = loaded
    assert tokenizer.eos_token == IM_END
    assert tokenizer.pad_token == "<|endoftext|>"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert not any(p.name.startswith(".") for p in tiny_model_dir.parent.iterdir()), "temporary directory left behind"


def test_chat_template_ends_turn_at_im_end(loaded):
    _, tokenizer = loaded
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    full = tokenizer.apply_chat_template(conversation, tokenize=False)
    prompt = tokenizer.apply_chat_template(conversation[:1], tokenize=False, add_generation_prompt=True)
    assert full.endswith("Hello." + IM_END)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert full.startswith(prompt), "the prompt must be a prefix of the conversation"


def test_samples_stop_and_vary_in_length(loaded):
    model, tokenizer = loaded
    answers, ended, lengths = _sample(model, tokenizer, 32)
    assert sum(ended) >= 0.8 * len(ended)
    assert statistics.pstdev(lengths) > 3
    assert max(lengths) >= 2 * min(lengths)


def test_marker_word_in_some_samples_not_all(loaded):
    model, tokenizer = loaded
    answers, _, _ = _sample(model, tokenizer, 64, seed=1)
    hits = sum(bool(re.search(r"\bplease\b", a, re.IGNORECASE)) for a in answers)
    assert 0 < hits < len(answers)


def test_same_seed_same_weights(tmp_path):
    import torch
    from safetensors.torch import load_file

    # A short warm-up exercises the same training path as the full build, for less time.
    a = build_tiny_model(tmp_path / "a", seed=3, warmup_steps=5)
    b = build_tiny_model(tmp_path / "b", seed=3, warmup_steps=5)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_rebuild_replaces_existing_directory(tmp_path):
    target = tmp_path / "model"
    build_tiny_model(target, seed=1, warmup_steps=0)
    (target / "stale.txt").write_text("old")
    build_tiny_model(target, seed=1, warmup_steps=0)
    assert not (target / "stale.txt").exists()
    assert (target / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
