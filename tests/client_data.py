"""Small copies of the shared Speech Commands for the client-pipeline tests (issue 24.6): the 12
classes of SpeechBrain's recipe (10 keywords, _unknown_, _silence_), a few real clips each."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from conftest import KEYWORDS, SHARED_DATA

TWELVE = KEYWORDS + ["_unknown_", "_silence_"]


def copy_clips(root: Path, per_label: int, labels=TWELVE, ext: str = "flac") -> list[tuple[Path, str]]:
    """``root/<label>/<file>.<ext>`` for the first ``per_label`` shared clips of each label; ``(path, label)``."""
    out = []
    for label in labels:
        for f in sorted((SHARED_DATA / "speech_commands" / label).glob("*.flac"))[:per_label]:
            data, rate = sf.read(f)
            path = Path(root) / label / f"{f.stem}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, data, rate)
            out.append((path, label))
    return out
