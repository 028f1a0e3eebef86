"""The listening test on disk: reading test.json / key.json and the listeners' answer files.

Answers are JSON lines, one file per listener (``answers/<listener>.jsonl``), appended one line
per answer with flush + fsync before the server replies, so an answer the page saw accepted
survives a reload, a closed tab or a killed server. A later answer to the same clip (or block)
replaces the earlier one; a torn last line (power cut mid-write) is skipped, not fatal.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ganaug.io import fsync_dir, read_versioned_json
from ganaug.listen.build import ANSWERS_DIR, FORMAT_VERSION, KEY_FILE, TEST_FILE, ListenError

__all__ = ["LISTENER_RE", "read_test", "read_key", "answer_path", "append_answer", "read_answers", "latest"]

LISTENER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _read(folder, name: str) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise ListenError(f"{folder}: no such folder; give the --out folder of `ganaug listen CKPT --data DIR --out DIR`")
    try:
        return read_versioned_json(folder / name, FORMAT_VERSION,
                                   missing="Build the test first: ganaug listen CKPT --data DIR --out DIR")
    except ValueError as err:
        raise ListenError(str(err)) from None


def read_test(folder) -> dict:
    """``test.json``: what the page may know (labels, choices, clip ids, block ids)."""
    return _read(folder, TEST_FILE)


def read_key(folder) -> dict:
    """``key.json``: which system and label each clip id (and block id) is. Never served."""
    return _read(folder, KEY_FILE)


def answer_path(folder, listener: str) -> Path:
    if not LISTENER_RE.match(listener or ""):
        raise ListenError(f"listener id {listener!r}: use 1-64 letters, digits, '-' or '_'")
    return Path(folder) / ANSWERS_DIR / f"{listener}.jsonl"


def append_answer(path: Path, record: dict) -> None:
    """Append ``record`` as one JSON line; on disk (flush + fsync) when this returns."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_dir(path.parent)


def read_answers(paths) -> tuple[list[dict], int]:
    """Every answer in the given ``.jsonl`` files, in file order -> (records, lines skipped as unreadable)."""
    records, skipped = [], 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    skipped += 1
                    continue
                if isinstance(record, dict) and record.get("kind") in ("clip", "diversity"):
                    records.append(record)
                else:
                    skipped += 1
    return records, skipped


def latest(records: list[dict]) -> dict[tuple, dict]:
    """The last answer of each (listener, kind, clip id or block id)."""
    out = {}
    for r in records:
        out[(r.get("listener"), r["kind"], r.get("id") if r["kind"] == "clip" else r.get("block"))] = r
    return out
