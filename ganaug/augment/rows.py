"""How synthetic clips enter a batch: the injection policy, which rows get synthetic clips, and what
happens to a clip the label filter rejects. The one place for all three: GanAugment (and so both
``ganaug kws`` trainers), ``GanMixDataset``, ``hf_map`` and ``hf_transform`` take an
:class:`InjectionPolicy`, draw rows here and apply the rejection rule here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch

from ganaug.augment.checks import check_ratio
from ganaug.augment.source import MAX_SEED, mix_seed

__all__ = ["InjectionPolicy", "MODES", "DEFAULT_RATIO", "draw_params", "synthetic_rows", "kept_rows", "worker_generator"]

MODES = ("replace", "append")
#: Synthetic rows per real row where appending is the default (kws.yaml's and ablation.yaml's ``gan_ratio``,
#: ``GanMixDataset``, ``hf_map``). With kws.yaml's half-weight synthetic rows it cost least of the policies
#: measured with a weak generator (docs/results.md); each item's ``synthetic`` flag lets your loss weight them too.
DEFAULT_RATIO = 0.25


@dataclass(frozen=True)
class InjectionPolicy:
    """How many synthetic clips a batch (or dataset) gets, and where.

    - ``mode="append"``: ``ratio`` synthetic rows per real row are added (in a batch: exactly ``ratio * n``
      rows, the fraction rounded at random, each a clip of a distinct real row's label, so no real row is lost
      and the labels keep the batch's proportions; a batch takes at most 1, a dataset (``GanMixDataset``,
      ``hf_map``) up to ``MAX_RATIO``).
    - ``mode="replace"``: each real row is replaced with probability ``p`` by a clip of its own label.

    A synthetic clip the label filter rejects at every try is dropped (:func:`kept_rows`): its row stays
    real (replace) or adds nothing (append).
    """

    mode: str = "replace"
    p: float = 0.5
    ratio: float = DEFAULT_RATIO

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: choose one of {MODES}")
        if isinstance(self.p, bool) or not isinstance(self.p, Real) or not math.isfinite(self.p) \
                or not 0.0 <= float(self.p) <= 1.0:
            raise ValueError(f"p={self.p!r}: must be a probability in [0, 1] (e.g. p=0.5)")
        check_ratio(self.ratio)

    @property
    def rate(self) -> float:
        """The expected share of rows that get a synthetic clip (``p`` or ``ratio``)."""
        return float(self.ratio if self.mode == "append" else self.p)

    def with_mode(self, mode: str | None) -> "InjectionPolicy":
        return self if mode is None or mode == self.mode else InjectionPolicy(mode, self.p, self.ratio)


def draw_params(batch_size: int, policy, generator: torch.Generator | None = None) -> dict:
    """The random choices of one call, drawn apart from the work: which rows (``mask``) and
    the seed of each row's synthetic clip (``seeds``), both ``(batch_size,)`` on the CPU.

    ``policy``: an :class:`InjectionPolicy` (append: exactly ``ratio * batch_size`` distinct rows, the
    fraction rounded at random; replace: each row with probability ``p``), or a float ``p`` (replace).
    In a DataLoader worker a seeded ``generator`` is first turned into that worker's own stream
    (:func:`worker_generator`), so workers never draw the same clips.
    """
    policy = policy if isinstance(policy, InjectionPolicy) else InjectionPolicy("replace", float(policy))
    generator = worker_generator(generator)
    device = generator.device if generator is not None else "cpu"
    if policy.mode == "append":
        if policy.ratio > 1:
            raise ValueError(f"ratio={policy.ratio:g}: a batch gets at most one synthetic row per real row; for more, "
                             f"add them to the dataset (GanMixDataset or hf_map)")
        exact = policy.ratio * batch_size
        count = int(exact) + int(torch.rand((), generator=generator, device=device) < exact - int(exact))
        mask = torch.zeros(batch_size, dtype=torch.bool, device=device)
        mask[torch.randperm(batch_size, generator=generator, device=device)[:count]] = True
    else:
        mask = torch.rand(batch_size, generator=generator, device=device) < policy.p
    seeds = torch.randint(0, MAX_SEED, (batch_size,), generator=generator, device=device)
    return {"mask": mask.cpu(), "seeds": seeds.cpu()}


def synthetic_rows(mask, known) -> list[int]:
    """THE choice of the rows that get a synthetic clip: drawn (``mask``) and of a label the
    generator knows (``known``; ``None``: all)."""
    return [r for r, drawn in enumerate(mask.tolist() if isinstance(mask, torch.Tensor) else mask)
            if drawn and (known is None or known[r])]


def kept_rows(accepted) -> list[int]:
    """THE rule for a clip the label filter rejected at every try: positions (into the rows asked
    for) that keep their synthetic clip. A rejected row gets none: it stays real (replace mode,
    ``hf_transform``) or adds no row (append mode, ``hf_map``)."""
    return [k for k, ok in enumerate(accepted.tolist() if isinstance(accepted, torch.Tensor) else accepted) if ok]


def worker_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """``generator`` itself, except in a DataLoader worker: there, a generator seeded from one draw
    of it and the worker's seed (``get_worker_info().seed``: the loader's base seed + worker id).

    Every worker holds a copy of the same seeded generator, so without this they would draw the
    same clips. The workers' streams differ, change every epoch with the loader's base seed, and
    repeat when the DataLoader is seeded too (its ``generator=`` or ``torch.manual_seed``).
    """
    info = torch.utils.data.get_worker_info()
    if generator is None or info is None:
        return generator
    draw = int(torch.randint(0, MAX_SEED, (), generator=generator, device=generator.device))
    return torch.Generator().manual_seed(mix_seed(draw, "worker", info.seed))

