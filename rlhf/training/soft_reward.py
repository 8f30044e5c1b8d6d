"""Reward-model training with per-pair soft labels: ``RewardTrainer.compute_loss`` extended.

TRL's Bradley–Terry loss is −log σ(r_chosen − r_rejected − margin); its ``margin``
column only shifts the logit and cannot carry a soft target. This subclass keeps TRL's
loss (margin, ``center_rewards_coefficient``, metrics) and adds (1 − p)·x per pair,
x being the same logit (margin included: with ``use_strength`` a vote's strength, see
:mod:`rlhf.training.strength`), so the pair's term is the cross-entropy against p (see
:mod:`rlhf.training.soft_targets`). ``tests/unit/test_soft_labels.py`` pins the TRL
source it relies on.
"""

from __future__ import annotations

import dataclasses

import torch
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from rlhf.training.soft_targets import LABEL_P, soft_correction


@dataclasses.dataclass
class SoftRewardCollator(DataCollatorForPreference):
    def torch_call(self, examples):
        out = super().torch_call(examples)
        if LABEL_P in examples[0]:
            out[LABEL_P] = torch.tensor([float(e[LABEL_P]) for e in examples], dtype=torch.float)
        return out


class SoftRewardTrainer(RewardTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.data_collator
        if type(c) is DataCollatorForPreference:
            self.data_collator = SoftRewardCollator(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if LABEL_P not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, LABEL_P]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        p = inputs.pop(LABEL_P, None)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if p is not None:
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            logits = chosen - rejected - (inputs["margin"] if "margin" in inputs else 0)
            loss = loss + soft_correction(logits, p.to(logits.device)).mean()
        return (loss, outputs) if return_outputs else loss
