"""Find the clips of a keyword corpus on disk without decoding them.

Two layouts are recognised:

* Speech Commands: ``<label>/<speaker>_nohash_<n>.wav|flac``; ``_unknown_`` files may be named
  ``<word>_<speaker>_nohash_<n>``; ``_silence_`` clips have no speaker; ``_background_noise_``
  (long noise recordings, not clips) is skipped.
* FSDD: a flat folder of ``<digit>_<speaker>_<index>.wav``. Labels are the digit *words*
  ``zero`` .. ``nine``, so FSDD and Speech Commands digits share names.

A speaker id is everything between the label's prefix and the index, underscores included
(``a_b_c_nohash_0`` is speaker ``a_b_c``). Hidden files and folders (``.x``, macOS's AppleDouble
``._x.flac``) are not clips and are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
HASH_DIVIDER = "_nohash_"
SKIPPED_DIRS = ("_background_noise_",)
SILENCE_LABEL = "_silence_"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_FSDD_NAME = re.compile(r"^(\d)_(.+)_(\d+)$")
UNKNOWN_LABEL = "_unknown_"


@dataclass(frozen=True)
class Clip:
    """One audio clip on disk. ``speaker`` is "" for clips with no speaker (``_silence_``);
    ``split_key`` is what speaker-disjoint splits hash (the speaker, or the file for no speaker)."""

    path: str
    label_name: str
    speaker: str
    split_key: str
    relpath: str  # "<label>/<file stem>" as Speech Commands' list files name it (without suffix)
    row: int = -1  # row of an in-memory source (a HuggingFace dataset); -1 for files


def _audio_files(folder: Path):
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def detect_layout(root: Path) -> str:
    """"speech_commands" or "fsdd"; a clear error for anything else."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no such folder. Point data_folder at a Speech Commands or FSDD folder, "
            f"or fetch one with ganaug.data.download('speech_commands_v2' | 'fsdd', root)"
        )
    if any(_FSDD_NAME.match(p.stem) for p in _audio_files(root)):
        return "fsdd"
    if any(not d.name.startswith(".") and d.is_dir() and _audio_files(d) for d in root.iterdir()):
        return "speech_commands"
    raise ValueError(
        f"{root}: neither the Speech Commands layout (<label>/<speaker>_nohash_<n>.wav) nor FSDD's "
        f"(<digit>_<speaker>_<index>.wav) was found; check data_folder"
    )


def _speech_commands_speaker(label: str, stem: str) -> str:
    if HASH_DIVIDER not in stem:
        return ""
    head = stem.split(HASH_DIVIDER)[0]
    if label == UNKNOWN_LABEL and "_" in head:  # folded layout: "<word>_<speaker>" (words have no "_")
        return head.split("_", 1)[1]
    return head


def scan_speech_commands(root: Path) -> list[Clip]:
    clips = []
    for folder in sorted(d for d in Path(root).iterdir() if d.is_dir()):
        if folder.name in SKIPPED_DIRS or folder.name.startswith("."):
            continue
        for path in _audio_files(folder):
            speaker = _speech_commands_speaker(folder.name, path.stem)
            relpath = f"{folder.name}/{path.stem}"
            clips.append(Clip(str(path), folder.name, speaker, speaker or relpath, relpath))
    return clips


def scan_fsdd(root: Path) -> list[Clip]:
    clips = []
    for path in _audio_files(Path(root)):
        match = _FSDD_NAME.match(path.stem)
        if match is None:
            continue
        digit, speaker, _ = match.groups()
        clips.append(Clip(str(path), DIGIT_WORDS[int(digit)], speaker, speaker, path.stem))
    return clips


def scan(root: Path) -> tuple[str, list[Clip]]:
    layout = detect_layout(root)
    clips = scan_fsdd(root) if layout == "fsdd" else scan_speech_commands(root)
    return layout, clips
