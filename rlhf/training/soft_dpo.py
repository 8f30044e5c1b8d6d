"""DPO with per-pair soft labels, strength offsets and weights: the smallest extension of TRL's ``DPOTrainer``.

TRL's sigmoid term sits inline in its private ``_compute_loss`` (and its collator drops
extra columns), so there is no method that computes just that term to override. Instead:

- :class:`SoftLabelCollator` is TRL's collator plus a ``label_p`` tensor, with
  ``use_strength`` a ``strength_offset`` tensor (ODPO's Δ, :mod:`rlhf.training.strength`), and
  for a ranking's pairs a ``pair_weight`` tensor (:mod:`rlhf.training.ranking_weights`);
- all are kept among the trainer's signature columns, so ``remove_unused_columns``
  leaves them in the dataset, and taken out of the batch before the model sees it;
- reference log-probabilities are precomputed (``precompute_ref_log_probs``), so they
  arrive in the batch, and the policy's come from a forward hook on the one policy call
  ``_compute_loss`` makes; from those :meth:`SoftDPOTrainer._compute_loss` forms x = β·Δ
  per pair exactly as TRL does for ``f_divergence_type="reverse_kl"`` and adds, times the
  sigmoid term's weight, the mean of what turns TRL's −log σ(x) into the pair's term:
  (1 − p)·x for a soft label; log σ(x) − log σ(x − s) for an offset s; both, with the
  offset inside the logit, −log σ(x − s) + (1 − p)(x − s). With weights w the sigmoid term
  becomes the mean of w × that whole term (:func:`~rlhf.training.ranking_weights.weighted_addition`).
  Every other part of TRL's loss (the ``sft`` term, ``loss_weights``, metrics) is TRL's own:
  the ``sft`` term anchors each chosen answer's likelihood per token and is not a judgement
  to weigh.

``tests/unit/test_soft_labels.py`` pins the TRL source this relies on: an upgrade that
changes it fails that test until someone has checked this module again.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from rlhf.errors import ConfigError
from rlhf.training.ranking_weights import WEIGHT, weighted_addition
from rlhf.training.soft_targets import LABEL_P, soft_correction
from rlhf.training.strength import OFFSET, shift_correction

_EXTRA = (LABEL_P, OFFSET, WEIGHT)  # per-pair float columns the collator carries and the loss reads


@dataclasses.dataclass
class SoftLabelCollator(DataCollatorForPreference):
    """TRL's preference collator, plus each example's ``label_p``, ``strength_offset`` and ``pair_weight``
    as float tensors."""

    def torch_call(self, examples):
        out = super().torch_call(examples)
        for key in _EXTRA:
            if key in examples[0]:
                out[key] = torch.tensor([float(e[key]) for e in examples], dtype=torch.float)
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
            "soft labels, strength offsets and ranking weights work with plain sigmoid DPO; here "
            + "; ".join(problems)
            + ": set soft_labels=false and label_smoothing=0 (or trl.label_smoothing for TRL's own), "
            "use_strength=false, and ranking_weight=pair"
        )


class SoftDPOTrainer(DPOTrainer):
    """``DPOTrainer`` whose sigmoid term is w·(−log σ(x − s) + (1 − p)(x − s)) per pair, x = βΔ (module docs)."""

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
        missing = [k for k in _EXTRA if k not in self._signature_columns]
        if missing:
            self._signature_columns = [*self._signature_columns, *missing]

    def compute_ref_log_probs(self, model, inputs):
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k not in _EXTRA})

    def _compute_loss(self, model, inputs, return_outputs):
        inputs = dict(inputs)
        p = inputs.pop(LABEL_P, None)
        offset = inputs.pop(OFFSET, None)
        weights = inputs.pop(WEIGHT, None)
        captured = []
        hook = model.register_forward_hook(lambda _m, _args, out: captured.append(out) if not captured else None)
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            hook.remove()
        if p is None and offset is None and weights is None:
            return result
        loss, outputs = result if return_outputs else (result, None)
        seq_len = inputs["completion_mask"].size(1) - 1
        logps = captured[0].log_probs[:, -seq_len:].sum(dim=1)  # as TRL: summed over the completion
        chosen, rejected = logps.chunk(2, dim=0)
        delta = (chosen - inputs["ref_chosen_logps"]) - (rejected - inputs["ref_rejected_logps"])
        x = self.beta * delta
        extra = None
        if offset is not None:
            offset = offset.to(x.device)
            extra = shift_correction(x, offset)
        if p is not None:  # the soft target's term, with the offset (if any) inside the logit
            soft = soft_correction(x - offset if offset is not None else x, p.to(x.device))
            extra = soft if extra is None else extra + soft
        loss = loss + weighted_addition(-F.logsigmoid(x), extra, weights) * self._sigmoid_weight
        return (loss, outputs) if return_outputs else loss
