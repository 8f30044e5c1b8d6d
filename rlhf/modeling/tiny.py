"""A tiny chat model built offline, saved like any other checkpoint.

These machines cannot download weights, yet tests and the demo need a model whose
samples a person (or a simulated rater) can judge. ``build_tiny_model`` makes one in a
few seconds on a CPU:

1. a byte-level BPE tokenizer trained on the shipped demonstrations, with ChatML
   special tokens and a chat template;
2. a small randomly initialised Llama-style causal LM, seeded;
3. a short SFT warm-up on the demonstrations with TRL's ``SFTTrainer``, so samples are
   readable-ish, end with ``<|im_end|>`` and vary in length and wording the way the
   corpus does (``please`` in ~18 % of answers, ``indeed`` ~17 %, ``sunny`` ~10 %).

The result is an ordinary directory: ``AutoTokenizer.from_pretrained`` and
``AutoModelForCausalLM.from_pretrained`` load it, and nothing downstream needs to know
it is tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMONSTRATIONS_PATH = _DATA_DIR / "demonstrations.jsonl"
PROMPTS_PATH = _DATA_DIR / "prompts.jsonl"
HELDOUT_PROMPTS_PATH = _DATA_DIR / "heldout_prompts.jsonl"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"

# ChatML. Two details matter for training:
# * the final ``<|im_end|>`` is not followed by a newline: a newline there would be part
#   of every rendered completion, and a preference for short answers would then teach
#   the policy to print newlines;
# * the assistant content and its ``<|im_end|>`` sit inside ``{% generation %}`` so that
#   TRL's ``assistant_only_loss`` masks everything else and still trains the stop token
#   (TRL refuses a custom template without these markers).
# The prompt rendered with ``add_generation_prompt`` is a prefix of the full conversation,
# which TRL's prompt/completion split relies on.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if not loop.first %}{{ '\\n' }}{% endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{%- if messages %}{{ '\\n' }}{% endif %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

# Large enough that nearly every corpus word is one token (samples then read as words,
# not byte soup); the trainer stops a little short of it when the corpus runs out of merges.
VOCAB_SIZE = 2000
MAX_NEW_TOKENS = 48


def _read_demonstrations(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _train_tokenizer(demonstrations: list[dict]):
    """Train a byte-level BPE on the corpus text and wrap it for transformers.

    Byte-level so that any input (names, digits, other scripts) tokenizes without
    unknown tokens, even though the vocabulary only knows the corpus well.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [m["content"] for row in demonstrations for m in row["messages"]]
    texts += ["user", "assistant", "system"]
    tok.train_from_iterator(texts, trainer=trainer)

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=256,
    )


def _new_model(tokenizer, seed: int):
    """A small random Llama: big enough to learn the corpus style, small enough to train in seconds."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def _warm_up(model, tokenizer, demonstrations: list[dict], *, seed: int, steps: int, work_dir: Path):
    """Supervised warm-up on the demonstrations, assistant tokens only."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(work_dir),
        max_steps=steps,
        # Many small steps teach a random model more per second than fewer large ones.
        per_device_train_batch_size=8,
        # A random tiny model barely moves at TRL's default 2e-5.
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10),
        weight_decay=0.0,
        max_length=128,
        assistant_only_loss=True,
        seed=seed,
        data_seed=seed,
        # CPU-friendly, quiet and leaves nothing behind but the final save.
        use_cpu=True,
        bf16=False,
        # TRL turns checkpointing on by default; `gradient_checkpointing` is a deprecated alias.
        activation_checkpointing=False,
        dataloader_num_workers=0,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(demonstrations),
        processing_class=tokenizer,
    )
    # With tqdm off, transformers prints every log dict (the closing {'train_runtime': …}) to stdout.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    # Matrices this small gain little from a second thread, and on a shared CPU the
    # threads' spin-waits made steps up to 8x slower; one thread is both fast and steady.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    return trainer.model


def build_tiny_model(output_dir: str | Path, *, seed: int = 0, warmup_steps: int = 300) -> Path:
    """Build the tiny chat model into ``output_dir`` and return its path.

    ``warmup_steps`` is the number of SFT steps (batch 8) on the demonstrations; 0 keeps
    the random weights, which is useful where a model only has to exist. The same seed
    gives the same weights. The directory is written under a temporary sibling name and
    renamed into place, so a crash never leaves a half checkpoint at ``output_dir``; an
    existing ``output_dir`` is replaced.
    """
    import torch
    from transformers import GenerationConfig

    output_dir = Path(output_dir).resolve()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    demonstrations = _read_demonstrations(DEMONSTRATIONS_PATH)

    tokenizer = _train_tokenizer(demonstrations)
    model = _new_model(tokenizer, seed)

    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        # mkdtemp makes the directory private; a checkpoint is read by other processes
        # (web app, workers), possibly as other users, so give it the usual permissions.
        tmp.chmod(0o755)
        if warmup_steps > 0:
            model = _warm_up(model, tokenizer, demonstrations, seed=seed, steps=warmup_steps, work_dir=tmp / "trainer")
            shutil.rmtree(tmp / "trainer", ignore_errors=True)
        # Plain ancestral sampling by default (no top-k/top-p), so the samples follow the
        # model's own distribution, which is what preference training reasons about.
        model.generation_config = GenerationConfig(
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=MAX_NEW_TOKENS,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model.config.eos_token_id = tokenizer.eos_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        model.to(torch.float32)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for path in tmp.iterdir():
            # save_pretrained writes the weights through a private temporary file.
            path.chmod(0o644)

        if output_dir.exists():
            # Move the old directory aside first so the rename below stays atomic.
            old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old.", dir=output_dir.parent))
            os.replace(output_dir, old / "x")
            os.replace(tmp, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def resolve_base_model(name: str, checkpoints_dir: Path) -> str:
    """``tiny`` is built once under ``checkpoints_dir``; anything else is a hub id or a local path."""
    if name != "tiny":
        return name
    import logging

    target = Path(checkpoints_dir) / "tiny-base"
    if not (target / "config.json").exists():
        logging.getLogger(__name__).warning("building the offline tiny model (first use)…")
        build_tiny_model(target)
    return str(target.resolve())
