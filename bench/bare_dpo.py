"""The baseline: a bare TRL DPO script on an exported preference file (what a user would write)."""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in open(args.data, encoding="utf-8") if line.strip()]
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    config = DPOConfig(
        output_dir=args.out + "-work",
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        data_seed=args.seed,
        beta=0.1,
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, 1.0],
        max_length=512,
        logging_steps=1,
        lr_scheduler_type="linear",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = DPOTrainer(model=args.model, args=config, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    trainer.save_model(args.out)
    tokenizer.save_pretrained(args.out)


if __name__ == "__main__":
    main()
