"""Which rows of a batch get synthetic clips, and what happens to a clip the label filter
rejects: the one place for both (GanAugment and ``hf_transform`` draw and choose rows here;
GanAugment, ``hf_map`` and ``hf_transform`` apply the rejection rule here)."""

from __future__ import annotations

import torch

from ganaug.augment.source import MAX_SEED, mix_seed

__all__ = ["draw_params", "synthetic_rows", "kept_rows", "worker_generator"]


def draw_params(batch_size: int, p: float, generator: torch.Generator | None = None) -> dict:
    """The random choices of one call, drawn apart from the work: which rows (``mask``) and
    the seed of each row's synthetic clip (``seeds``), both ``(batch_size,)`` on the CPU.

    In a DataLoader worker a seeded ``generator`` is first turned into that worker's own stream
    (:func:`worker_generator`), so workers never draw the same clips.
    """
    generator = worker_generator(generator)
    device = generator.device if generator is not None else "cpu"
    mask = torch.rand(batch_size, generator=generator, device=device) < p
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

