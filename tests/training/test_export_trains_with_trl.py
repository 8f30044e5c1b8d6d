"""The exported file is a dataset TRL trains on as it is: no conversion step for users."""

from __future__ import annotations

import pytest

from rlhf.services.dataset import export
from rlhf.services.simulate import simulate
from tests import factories

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_bare_trl_dpo_trains_on_the_exported_jsonl(session, tmp_path, tiny_model_dir):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    factories.comparisons(session, [(f"Yes, please take {i}.", f"No {i}.") for i in range(12)])
    simulate(session=session, rule="contains:please")
    path = tmp_path / "prefs.jsonl"
    assert export(session=session, path=path) == 12

    data = load_dataset("json", data_files=str(path), split="train")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=8,
        per_device_train_batch_size=4,
        learning_rate=5e-4,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = DPOTrainer(model=str(tiny_model_dir), args=args, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    logs = [e for e in trainer.state.log_history if "rewards/margins" in e]
    assert logs[-1]["rewards/margins"] > logs[0]["rewards/margins"]  # it learned the exported preference
    trainer.save_model(str(tmp_path / "model"))
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")
