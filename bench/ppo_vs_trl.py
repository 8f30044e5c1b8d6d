"""Our PPO against TRL 1.12's ``trl.experimental.ppo.PPOTrainer``, on the same work.

TRL deleted its PPO trainer in 1.13; 1.12 is what a user who wants PPO would pin, so it is
the peer ours is measured against. It runs in a venv of its own (created on first use and
reused: a ``.pth`` adds the project's site-packages, then ``pip install --no-deps
trl==1.12.0``), so the project's pins stay as they are.

Per model (the tiny model after its SFT warm-up, and a ~35M-parameter model built on the
same tokenizer; ``--quick``: the tiny one only), both trainers start from the same policy,
reference, value initialisation and reward model. The reward model is trained here from
simulated votes (``contains:please``) on the tiny model's own samples, on each model's
backbone, so it shares the policy's tokenizer: TRL scores token ids, ours re-renders the
text with the reward model's chat template, and both then see the same conversation.
Runs are interleaved (ours, TRL, TRL, ours, ...) over the seeds, each in its own process.

Reported, each as ours/TRL:
- seconds per update: median over the updates after the first (warm-up) one;
- peak memory: the trainer process's peak resident set (CPU) or peak CUDA allocation;
- reward gained per update: one shared evaluator scores every trained policy and the
  starting one on the same held-out prompts with the same seeded samples and reward
  model; (after - before) / updates, mean ± sd over the seeds.

    .venv/bin/python bench/ppo_vs_trl.py [--quick] [--updates 8] [--seeds 3] [--threads 1] [--work DIR]

The last line reads ``ppo s/update ours/TRL: R; reward gain ours/TRL: G`` (tiny model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRL_VERSION = "1.12.0"
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlhf-bench" / f"trl-{TRL_VERSION}"

# The shared settings; each trainer's own names for them are in MAPPING.
SETTINGS = {
    "rollout": 16,  # responses sampled per update
    "mini_batch": 8,  # responses per optimizer step
    "epochs": 4,  # PPO epochs over each rollout
    "response_length": 48,
    "kl_coef": 0.05,
    "missing_eos_penalty": 1.0,
    "learning_rate": 2e-4,  # policy and value alike
    "temperature": 1.0,
    "max_prompt_length": 256,
}
MAPPING = [
    ("rollout size", "batch_size=16", "per_device_train_batch_size=16 x gradient_accumulation_steps=1"),
    ("minibatches", "mini_batch_size=8 (2 per rollout)", "num_mini_batches=2"),
    ("PPO epochs", "num_ppo_epochs=4", "num_ppo_epochs=4"),
    ("response length", "max_completion_length=48", "response_length=48, stop_token='eos'"),
    ("KL coefficient", "beta=0.05 (k1 in the reward)", "kl_coef=0.05, kl_estimator='k1'"),
    ("missing-EOS penalty", "missing_eos_penalty=1.0", "missing_eos_penalty=1.0"),
    (
        "learning rates",
        "learning_rate=2e-4, value_learning_rate=None (= policy's), AdamW eps 1e-5",
        "learning_rate=2e-4 (one AdamW over policy+value), adam_epsilon=1e-5",
    ),
    ("LR schedule", "anneal_lr=True (linear to 0)", "lr_scheduler_type='linear', no warm-up"),
    ("no-grad forward chunk", "mini_batch_size (8)", "local_rollout_forward_batch_size=16 (one generate call)"),
    ("extra generations", "eval_num_prompts=0", "num_sample_generations=0"),
    (
        "gradient clipping",
        "max_grad_norm=1e6 (off, as TRL's; our default is 1.0)",
        "none (1.12's PPO loop never clips)",
    ),
    ("value model", "value_model_init='reward'", "the reward checkpoint, as value_model"),
    ("reward input", "text re-rendered with the reward model's template", "query + response token ids"),
    ("temperature", "1.0", "1.0"),
]


# --- the TRL venv -----------------------------------------------------------------------


def ensure_trl_venv(venv: Path) -> Path:
    """The venv's python; built on first use with TRL 1.12 over the project's own packages."""
    python = venv / "bin" / "python"
    probe = "import trl, sys; sys.exit(trl.__version__ != %r)" % TRL_VERSION
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return python
    import sysconfig

    print(f"creating {venv} with trl=={TRL_VERSION} over this environment's packages", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    project_site = sysconfig.get_paths()["purelib"]
    venv_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # addsitedir (not a bare path) so the project's own .pth files, such as an editable
    # install, apply too; it appends, so the venv's TRL 1.12 comes first.
    Path(venv_site, "rlhf-project.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", f"trl=={TRL_VERSION}"], check=True)
    subprocess.run([str(python), "-c", probe], check=True)
    return python


# --- models and reward model (parent process, project venv) -----------------------------


def build_large(tiny: Path, out: Path) -> None:
    """A ~35M-parameter Llama on the tiny model's tokenizer, randomly initialised."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig

    tok = AutoTokenizer.from_pretrained(tiny)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig.from_pretrained(tiny)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _parameters(path: Path) -> int:
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())


def simulated_votes(policy: Path, prompts: list[list[dict]]) -> list[dict]:
    """Preference rows from a ``contains:please`` rater on pairs of the policy's own samples."""
    from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
    from rlhf.models import Choice
    from rlhf.services.simulate import parse_rule

    rule = parse_rule("contains:please")
    samples = sample_checkpoint(str(policy), prompts, n=4, params=SamplingParams(seed=11, max_new_tokens=48))
    rows = []
    for i, (prompt, per) in enumerate(zip(prompts, samples)):
        for a, b in ((0, 1), (2, 3), (0, 2), (1, 3)):
            choice = rule(per[a].text, per[b].text)
            if choice is Choice.tie:
                continue
            chosen, rejected = (per[a], per[b]) if choice is Choice.a else (per[b], per[a])
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": chosen.text}],
                    "rejected": [{"role": "assistant", "content": rejected.text}],
                    "comparison_id": i,
                }
            )
    return rows


def train_reward_model(base: Path, rows: list[dict], out: Path) -> float:
    import contextlib
    import io

    from rlhf.training.params import build_params
    from rlhf.training.reward import train_reward

    params, _ = build_params("reward", {"steps": 60})
    with contextlib.redirect_stdout(io.StringIO()):  # TRL prints every logged step
        metrics = train_reward(
            base=str(base), rows=rows, output_dir=out, params=params, work_dir=out.with_name(out.name + "-work")
        )
    return metrics["heldout_accuracy"]


def mean_reward(policy: str, reward_model, reward_tok, prompts: list[list[dict]], n: int) -> float:
    """The shared evaluator: seeded samples on held-out prompts, scored by the reward model."""
    from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
    from rlhf.training.scoring import score_conversations

    samples = sample_checkpoint(policy, prompts, n=n, params=SamplingParams(seed=7, max_new_tokens=48))
    convs = [p + [{"role": "assistant", "content": s.text}] for p, per in zip(prompts, samples) for s in per]
    scores = score_conversations(reward_model, reward_tok, convs)
    return sum(scores) / len(scores)


# --- the two trainers, each in its own process ---------------------------------------------


def _peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Clock:
    """Wall and CPU time at the end of each update; the differences are the updates after the first."""

    def __init__(self, job: dict):
        import torch

        if job.get("threads"):
            torch.set_num_threads(job["threads"])
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def mark(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def result(self) -> dict:
        def diffs(marks):
            return [b - a for a, b in zip(marks, marks[1:])]

        return {"seconds": diffs(self.wall), "cpu_seconds": diffs(self.cpu), "peak_mb": _peak_memory_mb()}


def worker_ours(job: dict) -> dict:
    from rlhf.training.params import build_params
    from rlhf.training.ppo.trainer import train_ppo

    s = job["settings"]
    params, _ = build_params(
        "ppo",
        {
            "steps": job["updates"],
            "batch_size": s["rollout"],
            "mini_batch_size": s["mini_batch"],
            "num_ppo_epochs": s["epochs"],
            "max_completion_length": s["response_length"],
            "beta": s["kl_coef"],
            "missing_eos_penalty": s["missing_eos_penalty"],
            "learning_rate": s["learning_rate"],
            "temperature": s["temperature"],
            "max_prompt_length": s["max_prompt_length"],
            "seed": job["seed"],
            # No clipping on either side: TRL 1.12's PPO loop never clips, and a clipped step learns less.
            "value_model_init": "reward",
            "eval_num_prompts": 0,
            "max_grad_norm": 1e6,
        },
    )
    clock = _Clock(job)
    train_ppo(
        policy_path=job["policy"],
        reward_model_path=job["reward"],
        prompts=job["prompts"],
        output_dir=job["output_dir"],
        params=params,
        on_log=lambda record: clock.mark(),
    )
    return clock.result()


def worker_trl(job: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    s = job["settings"]
    tok = AutoTokenizer.from_pretrained(job["policy"], padding_side="left")
    rows = [
        tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"][
            -s["max_prompt_length"] :
        ]
        for p in job["prompts"]
    ]
    data = Dataset.from_dict({"input_ids": rows})
    cuda = torch.cuda.is_available()
    args = PPOConfig(
        output_dir=job["output_dir"] + "-work",
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=False,
        gradient_checkpointing=False,
        seed=job["seed"],
        dataloader_num_workers=0,
        per_device_train_batch_size=s["rollout"],
        gradient_accumulation_steps=1,
        num_mini_batches=s["rollout"] // s["mini_batch"],
        num_ppo_epochs=s["epochs"],
        total_episodes=job["updates"] * s["rollout"],
        local_rollout_forward_batch_size=s["rollout"],
        response_length=s["response_length"],
        stop_token="eos",
        kl_coef=s["kl_coef"],
        kl_estimator="k1",
        missing_eos_penalty=s["missing_eos_penalty"],
        learning_rate=s["learning_rate"],
        adam_epsilon=1e-5,
        lr_scheduler_type="linear",
        warmup_steps=0,
        temperature=s["temperature"],
        num_sample_generations=0,
    )
    torch.manual_seed(job["seed"])
    policy = AutoModelForCausalLM.from_pretrained(job["policy"], dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(job["policy"], dtype=torch.float32)
    value = AutoModelForSequenceClassification.from_pretrained(job["reward"], num_labels=1, dtype=torch.float32)
    reward = AutoModelForSequenceClassification.from_pretrained(job["reward"], num_labels=1, dtype=torch.float32)
    clock = _Clock(job)

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):  # after each update's optimisation and logging
            clock.mark()

    trainer = PPOTrainer(
        args=args,
        processing_class=tok,
        model=policy,
        ref_model=reference,
        reward_model=reward,
        value_model=value,
        train_dataset=data,
        eval_dataset=data,
        callbacks=[Clock()],
    )
    trainer.train()
    policy.save_pretrained(job["output_dir"])
    tok.save_pretrained(job["output_dir"])
    return clock.result()


def run_worker(python: str, which: str, job: dict, work: Path) -> dict:
    job_path = work / f"job-{which}-{job['tag']}.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1"}
    out = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", which, str(job_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"{which} trainer failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the comparison ----------------------------------------------------------------------


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):+.3f} ± {sd:.3f}"


def compare(label: str, policy: Path, reward: Path, trl_python: Path, prompts, held, args, work: Path) -> dict:
    from rlhf.training.scoring import load_reward_model

    rm, rtok = load_reward_model(str(reward))
    before = mean_reward(str(policy), rm, rtok, held, args.eval_samples)
    results: dict[str, list[dict]] = {"ours": [], "trl": []}
    for i, seed in enumerate(range(args.seeds)):
        order = ("ours", "trl") if i % 2 == 0 else ("trl", "ours")  # interleaved, alternating who goes first
        for which in order:
            out = work / f"{which}-{policy.name}-s{seed}"
            job = {
                "tag": f"{policy.name}-s{seed}",
                "policy": str(policy),
                "reward": str(reward),
                "prompts": prompts,
                "output_dir": str(out),
                "updates": args.updates,
                "seed": seed,
                "settings": SETTINGS,
                "threads": args.threads,
            }
            python = sys.executable if which == "ours" else str(trl_python)
            r = run_worker(python, which, job, work)
            r["gain"] = (mean_reward(str(out), rm, rtok, held, args.eval_samples) - before) / args.updates
            r["s_update"] = statistics.median(r["seconds"])
            r["cpu_update"] = statistics.median(r["cpu_seconds"])
            results[which].append(r)
            print(
                f"  {label} seed {seed} {which:4}: {r['s_update']:.3f} s/update ({r['cpu_update']:.3f} CPU s), "
                f"peak {r['peak_mb']:.0f} MB, "
                f"reward {r['gain']:+.3f}/update",
                flush=True,
            )
    summary = {}
    for which, rs in results.items():
        summary[which] = {
            "s_update": statistics.median(r["s_update"] for r in rs),
            "cpu_update": statistics.median(r["cpu_update"] for r in rs),
            "peak_mb": max(r["peak_mb"] for r in rs),
            "gains": [r["gain"] for r in rs],
        }
    o, t = summary["ours"], summary["trl"]
    summary["ratio_s"] = o["s_update"] / t["s_update"]
    summary["ratio_mem"] = o["peak_mb"] / t["peak_mb"]
    tg = statistics.mean(t["gains"])
    summary["ratio_gain"] = statistics.mean(o["gains"]) / tg if tg else float("nan")
    summary["before"] = before
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the tiny model only, few updates, 3 seeds")
    ap.add_argument("--updates", type=int, default=None, help="PPO updates per run (default 8, quick 6)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-samples", type=int, default=16, help="samples per held-out prompt (16 prompts)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per trainer (0: torch's default); one measures the work rather than how "
        "the cores are shared with whatever else runs",
    )
    ap.add_argument("--models", default="tiny,large", help="which of tiny,large to run (--quick: tiny)")
    ap.add_argument("--work", type=Path, help="work folder; models and reward models already in it are reused")
    ap.add_argument("--trl-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--worker", nargs=2, metavar=("WHICH", "JOB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        which, job_path = args.worker
        result = (worker_ours if which == "ours" else worker_trl)(json.loads(Path(job_path).read_text()))
        print(json.dumps(result))
        return
    args.updates = args.updates or (6 if args.quick else 8)

    import datasets
    from transformers.utils import logging as hf_logging

    from rlhf.modeling.sample_stats import heldout_prompts
    from rlhf.modeling.tiny import PROMPTS_PATH, build_tiny_model

    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()

    trl_python = ensure_trl_venv(args.trl_venv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rlhf-ppo-vs-trl-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tiny = work / "tiny"
    if not (tiny / "config.json").exists():
        build_tiny_model(tiny)
    prompts = [[{"role": "user", "content": json.loads(line)["prompt"]}] for line in open(PROMPTS_PATH)]
    held = heldout_prompts(16)
    votes = simulated_votes(tiny, prompts)
    wanted = {"tiny"} if args.quick else set(args.models.split(","))
    models = [("tiny", tiny)] if "tiny" in wanted else []
    if "large" in wanted:
        if not (work / "large" / "config.json").exists():
            build_large(tiny, work / "large")
        n = _parameters(work / "large")
        models.append((f"{n / 1e6:.0f}M", work / "large"))

    print("\nsettings, ours -> TRL 1.12:")
    print(f"  {'setting':22} {'ours':52} TRL 1.12")
    for name, ours, trl in MAPPING:
        print(f"  {name:22} {ours:52} {trl}")
    print(
        f"  {args.updates} updates per run, {args.seeds} seeds, {len(votes)} simulated votes, "
        f"evaluator: 16 held-out prompts x {args.eval_samples} samples\n"
    )

    summaries = {}
    for label, policy in models:
        reward = work / f"rm-{policy.name}"
        if not (reward / "config.json").exists():
            accuracy = train_reward_model(policy, votes, reward)
            print(f"{label}: reward model held-out accuracy {accuracy:.2f}", flush=True)
        summaries[label] = compare(label, policy, reward, trl_python, prompts, held, args, work)

    print(
        f"\n{'model':6} {'s/update ours':>13} {'TRL':>7} {'ratio':>6} {'CPU s ours':>10} {'TRL':>6} {'ratio':>6}"
        f" {'peak MB ours':>12} {'TRL':>6} {'ratio':>6} {'reward/update ours':>19} {'TRL':>16} {'ratio':>6}"
    )
    for label, s in summaries.items():
        o, t = s["ours"], s["trl"]
        print(
            f"{label:6} {o['s_update']:13.3f} {t['s_update']:7.3f} {s['ratio_s']:6.2f} {o['cpu_update']:10.3f} "
            f"{t['cpu_update']:6.3f} {o['cpu_update'] / t['cpu_update']:6.2f} {o['peak_mb']:12.0f} "
            f"{t['peak_mb']:6.0f} {s['ratio_mem']:6.2f} {mean_sd(o['gains']):>19} {mean_sd(t['gains']):>16} "
            f"{s['ratio_gain']:6.2f}"
        )
    print(f"(total {time.perf_counter() - started:.0f} s; work in {work})")
    first = summaries.get("tiny") or next(iter(summaries.values()))  # the tiny model when it ran
    print(f"ppo s/update ours/TRL: {first['ratio_s']:.2f}; reward gain ours/TRL: {first['ratio_gain']:.2f}")


if __name__ == "__main__":
    main()
