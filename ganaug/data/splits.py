"""Speaker-disjoint, deterministic train/valid/test splits.

The full Speech Commands ships ``validation_list.txt``/``testing_list.txt`` (made by a hash of
the speaker id, its README's ``which_set``); when they exist they are used as they are. Without
them, speakers are ranked by a hash of their id and dealt out by count: ``round(n * fraction)``
speakers to valid and test, at least one each when there are 3 or more speakers, the rest to
train. A threshold on the hash, as ``which_set`` does, would be wrong for a folder that is itself
a slice of that hash range: the shared 160-speaker subset *is* Speech Commands' test set, so every
speaker in it falls in the "test" range. Ranking is deterministic for a given set of speakers.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

SPLITS = ("train", "valid", "test")


def _rank_key(key: str) -> str:
    return hashlib.sha1(f"ganaug-split:{key}".encode("utf-8")).hexdigest()


def check_fractions(split_fractions) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in split_fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"split_fractions={split_fractions!r}: give three non-negative (train, valid, test) "
            f"fractions that sum to 1, e.g. (0.8, 0.1, 0.1)"
        )
    return fractions


def assign_splits(keys, split_fractions=(0.8, 0.1, 0.1)) -> dict[str, str]:
    """Map each split key (a speaker id) to "train", "valid" or "test"."""
    train, valid, test = check_fractions(split_fractions)
    ranked = sorted(set(keys), key=_rank_key)
    n_valid = round(len(ranked) * valid)
    n_test = round(len(ranked) * test)
    if len(ranked) >= 3:  # every requested split gets at least one speaker
        n_valid = max(n_valid, 1 if valid > 0 else 0)
        n_test = max(n_test, 1 if test > 0 else 0)
    out = {key: "valid" for key in ranked[:n_valid]}
    out.update({key: "test" for key in ranked[n_valid : n_valid + n_test]})
    out.update({key: "train" for key in ranked[n_valid + n_test :]})
    return out


def read_list_files(root: Path) -> dict[str, str] | None:
    """Speech Commands' own ``validation_list.txt``/``testing_list.txt``: relpath stem -> split."""
    root = Path(root)
    lists = {"valid": root / "validation_list.txt", "test": root / "testing_list.txt"}
    if not all(p.is_file() for p in lists.values()):
        return None
    out = {}
    for split, path in lists.items():
        for line in path.read_text().splitlines():
            if line.strip():
                out[line.strip().rsplit(".", 1)[0]] = split
    return out


def subset_speakers(speakers, fraction: float, seed: int) -> set[str]:
    """A seeded subset of ``max(1, round(fraction * n))`` speakers."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"speaker_fraction={fraction}: must be in (0, 1], e.g. 0.25 for a quarter of the speakers")
    speakers = sorted(set(speakers))
    if fraction == 1.0 or not speakers:
        return set(speakers)
    keep = max(1, round(fraction * len(speakers)))
    return set(random.Random(seed).sample(speakers, keep))
