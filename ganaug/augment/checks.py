"""Checks of the arguments every augmentation path shares: label names of a batch, the
unknown-label rule, ratios."""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = ["label_names_of", "check_ratio", "check_policy", "check_known", "MAX_RATIO", "UNKNOWN_LABELS"]

MAX_RATIO = 1000.0  # synthetic items per real item; more is a typo, not a request (it would fill the memory)
UNKNOWN_LABELS = ("error", "keep")  # what a label the generator does not know does


def label_names_of(labels, label_names=None, batch_size: int | None = None) -> list[str]:
    """Label names of a batch from names, or from indices (tensor or ints) plus ``label_names``."""
    if isinstance(labels, str):
        raise ValueError(f"labels={labels!r}: give one label per row (a list of names or a tensor of indices)")
    if isinstance(labels, torch.Tensor):
        if labels.is_floating_point() or labels.dim() > 2 or (labels.dim() == 2 and labels.shape[1] != 1):
            raise ValueError(f"labels: expected integer indices of shape (batch,) or (batch, 1), got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        values = labels.reshape(-1).tolist()
    else:
        values = list(labels)
    if batch_size is not None and len(values) != batch_size:
        raise ValueError(f"labels has {len(values)} entries for a batch of {batch_size} rows; give one label per row")
    if all(isinstance(v, str) for v in values):
        return values
    if label_names is None:
        raise ValueError("labels are indices: pass label_names= (the dataset's label names, in index order) so they "
                         "can be matched to the generator's labels by name")
    names = list(getattr(label_names, "names", label_names))  # also a datasets.ClassLabel
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v)
            continue
        if isinstance(v, bool) or not isinstance(v, Integral):
            raise ValueError(f"label {v!r} is not a label index: labels are names or whole-number indices into "
                             f"label_names (a float like 0.7 is not rounded to a class)")
        if not 0 <= int(v) < len(names):
            raise ValueError(f"label index {int(v)} is outside label_names (0..{len(names) - 1}: {names})")
        else:
            out.append(str(names[int(v)]))
    return out


def check_ratio(ratio, name: str = "ratio") -> float:
    """``ratio`` as a float in [0, MAX_RATIO]; NaN, infinities, bools and huge values are one-line errors."""
    if isinstance(ratio, bool) or not isinstance(ratio, Real) or not math.isfinite(ratio) or ratio < 0:
        raise ValueError(f"{name}={ratio!r}: give the number of synthetic items per real item, a finite number >= 0 "
                         f"(e.g. 0.5)")
    if ratio > MAX_RATIO:
        raise ValueError(f"{name}={ratio!r}: at most {MAX_RATIO:g} synthetic items per real item; for a purely "
                         f"synthetic set write a bank with `ganaug generate CKPT --per-label N` instead")
    return float(ratio)


def check_policy(unknown_labels: str, name: str = "unknown_labels") -> str:
    """``unknown_labels`` if it is one of :data:`UNKNOWN_LABELS`, else a one-line error."""
    if unknown_labels not in UNKNOWN_LABELS:
        raise ValueError(f"{name}={unknown_labels!r}: choose 'error' (a label the generator does not know raises) "
                         f"or 'keep' (its rows stay real)")
    return unknown_labels


def check_known(names, known, policy: str, keep: str = "unknown_labels='keep'") -> list[bool]:
    """THE unknown-label rule: which of ``names`` the generator knows (``known``), one bool per name.

    With ``policy="error"`` a name it does not know is a ValueError that names them, what the
    generator knows, and ``keep`` (how this caller spells the way out); with ``"keep"`` such rows
    get no synthetic clip and stay real.
    """
    known = set(known)
    verdict = [name in known for name in names]
    if policy == "error" and not all(verdict):
        unknown = sorted({str(n) for n, k in zip(names, verdict) if not k})
        raise ValueError(f"labels {unknown} are not known to the generator (it knows {sorted(known)}); pass {keep} "
                         f"to give them no synthetic clips (their rows stay real), or use a generator trained on them")
    return verdict
