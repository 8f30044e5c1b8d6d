"""DPO with per-pair soft labels: the smallest extension of TRL's ``DPOTrainer`` that carries them.

TRL's sigmoid term sits inline in its private ``_compute_loss`` (and its collator drops
extra columns), so there is no method that computes just that term to override. Instead:

- :class:`SoftLabelCollator` is TRL's collator plus a ``label_p`` tensor;
- ``label_p`` is kept among the trainer's signature columns, so ``remove_unused_columns``
  leaves it in the dataset, and taken out of the batch before the model sees it;
- reference log-probabilities are precomputed (``precompute_ref_log_probs``), so they
  arrive in the batch, and the policy's come from a forward hook on the one policy call
  ``_compute_loss`` makes; from those :meth:`SoftDPOTrainer._compute_loss` forms β·Δ
  per pair exactly as TRL does for ``f_divergence_type="reverse_kl"`` and adds
  ``mean((1 − p)·β·Δ)`` times the sigmoid term's weight to TRL's loss. Every other part
  of TRL's loss (the ``sft`` term, ``loss_weights``, metrics) is TRL's own.

``tests/unit/test_soft_labels.py`` pins the TRL source this relies on: an upgrade that
changes it fails that test until someone has checked this module again.
"""

from __future__ import annotations

import dataclasses

import torch
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from rlhf.errors import ConfigError
from rlhf.training.soft_targets import LABEL_P, soft_correction


@dataclasses.dataclass
class SoftLabelCollator(DataCollatorForPreference):
    """TRL's preference collator, plus each example's ``label_p`` as a float tensor."""

    def torch_call(self, examples):
        out = super().torch_call(examples)
        if LABEL_P in examples[0]:
            out[LABEL_P] = torch.tensor([float(e[LABEL_P]) for e in examples], dtype=torch.float)
        return out


def check_soft_config(args) -> None:
    """The TRL settings under which β·Δ is formed as :meth:`SoftDPOTrainer._compute_loss` forms it."""
    problems = []
    loss_types = args.loss_type if isinstance(args.loss_type, list) else [args.loss_type]
    if "sigmoid" not in loss_types:
        problems.append(f"loss_type {loss_types} has no 'sigmoid' term to soften")
    if getattr(args, "f_divergence_type", "reverse_kl") not in ("reverse_kl", None):
        problems.append(f"f_divergence_type={args.f_divergence_type}")
    if getattr(args, "ld_alpha", None) is not None:
        problems.append("ld_alpha is set")
    if getattr(args, "use_weighting", False):
        problems.append("use_weighting (WPO) is on")
    if getattr(args, "sync_ref_model", False):
        problems.append("sync_ref_model is on (soft labels need precomputed reference log-probs)")
    if problems:
        raise ConfigError(
            "soft labels work with plain sigmoid DPO; here "
            + "; ".join(problems)
            + ": set soft_labels=false and label_smoothing=0 (or trl.label_smoothing for TRL's own)"
        )


class SoftDPOTrainer(DPOTrainer):
    """``DPOTrainer`` whose sigmoid term is −log σ(βΔ) + (1 − p)·βΔ per pair (see the module docs)."""

    def __init__(self, *args, **kwargs):
        train_args = kwargs["args"]
        check_soft_config(train_args)
        if not train_args.precompute_ref_log_probs:
            raise ConfigError("SoftDPOTrainer needs precompute_ref_log_probs=True")
        super().__init__(*args, **kwargs)
        # Built by TRL in __init__ (it also served the reference precompute, which needs no p).
        c = self.data_collator
        if type(c) is DataCollatorForPreference:
            self.data_collator = SoftLabelCollator(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})
        self._sigmoid_weight = sum(w for t, w in zip(self.loss_types, self.loss_weights) if t == "sigmoid")

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if LABEL_P not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, LABEL_P]

    def compute_ref_log_probs(self, model, inputs):
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k != LABEL_P})

    def _compute_loss(self, model, inputs, return_outputs):
        inputs = dict(inputs)
        p = inputs.pop(LABEL_P, None)
        captured = []
        hook = model.register_forward_hook(lambda _m, _args, out: captured.append(out) if not captured else None)
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            hook.remove()
        if p is None:
            return result
        loss, outputs = result if return_outputs else (result, None)
        seq_len = inputs["completion_mask"].size(1) - 1
        logps = captured[0].log_probs[:, -seq_len:].sum(dim=1)  # as TRL: summed over the completion
        chosen, rejected = logps.chunk(2, dim=0)
        delta = (chosen - inputs["ref_chosen_logps"]) - (rejected - inputs["ref_rejected_logps"])
        extra = soft_correction(self.beta * delta, p.to(delta.device)).mean() * self._sigmoid_weight
        loss = loss + extra
        return (loss, outputs) if return_outputs else loss
