"""Reward-model training with per-pair soft labels and weights: ``RewardTrainer.compute_loss`` extended.

TRL's Bradley–Terry loss is the batch mean of −log σ(r_chosen − r_rejected − margin); its
``margin`` column only shifts the logit and cannot carry a soft target or a weight. This
subclass keeps TRL's loss (margin, ``center_rewards_coefficient``, metrics) and adds, per pair,
with z the same logit (margin included: with ``use_strength`` a vote's strength, see
:mod:`rlhf.training.strength`):

- (1 − p)·z, so the pair's term is the cross-entropy against p (see :mod:`rlhf.training.soft_targets`);
- with a ``pair_weight`` column (a ranking's pairs, :mod:`rlhf.training.ranking_weights`), what
  makes the batch's preference loss the mean of weight × the pair's whole term. The
  ``center_rewards_coefficient`` penalty stays unweighted: it bounds the rewards' size, not
  any judgement.

Both columns are kept among the trainer's signature columns (``remove_unused_columns``
would drop them otherwise) and added to the batch by :class:`SoftRewardCollator`.
``tests/unit/test_soft_labels.py`` pins the TRL source it relies on.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from rlhf.training.ranking_weights import WEIGHT, weighted_addition
from rlhf.training.soft_targets import LABEL_P, soft_correction

_EXTRA = (LABEL_P, WEIGHT)  # per-pair float columns the collator carries and the loss reads


@dataclasses.dataclass
class SoftRewardCollator(DataCollatorForPreference):
    """TRL's reward collator, plus each example's ``label_p`` and ``pair_weight`` as float tensors."""

    def torch_call(self, examples):
        out = super().torch_call(examples)
        for key in _EXTRA:
            if key in examples[0]:
                out[key] = torch.tensor([float(e[key]) for e in examples], dtype=torch.float)
        return out


class SoftRewardTrainer(RewardTrainer):
    """``RewardTrainer`` whose pair term is weight × (−log σ(z) + (1 − p)·z), z = r_chosen − r_rejected − margin."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.data_collator
        if type(c) is DataCollatorForPreference:
            self.data_collator = SoftRewardCollator(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        missing = [k for k in _EXTRA if k not in self._signature_columns]
        if missing:
            self._signature_columns = [*self._signature_columns, *missing]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        p = inputs.pop(LABEL_P, None)
        weights = inputs.pop(WEIGHT, None)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if p is not None or weights is not None:
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            logits = chosen - rejected - (inputs["margin"] if "margin" in inputs else 0)
            extra = soft_correction(logits, p.to(logits.device)) if p is not None else None
            loss = loss + weighted_addition(-F.logsigmoid(logits), extra, weights)
        return (loss, outputs) if return_outputs else loss
