"""Adapter folders made in a second, without training: PEFT's format, as an adapter run saves them."""

from __future__ import annotations

from pathlib import Path


def make_adapter(base_dir: Path, out_dir: Path, kind: str = "lora", seed: int = 0) -> Path:
    """A LoRA (random, non-zero: it changes the model) or prompt-tuning adapter over ``base_dir``."""
    import torch
    from peft import LoraConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rlhf.modeling.tokens import load_tokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = (
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False)
        if kind == "lora"
        else PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out_dir)
    load_tokenizer(str(base_dir)).save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    return out_dir


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
