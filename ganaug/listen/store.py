"""The listening test on disk: reading test.json / key.json and the listeners' answer files.

Answers are JSON lines, one file per listener (``answers/<listener>.jsonl``), appended one line
per answer with flush + fsync before the server replies, so an answer the page saw accepted
survives a reload, a closed tab or a killed server. A later answer to the same clip (or block)
replaces the earlier one. :func:`check_answer` is the one rule for an answer, applied by the
server before it stores one and by the scorer to every stored line: a line that breaks it (a
torn last line, invalid UTF-8, NaN, a rating outside 1-5, a list where an id belongs, an answer
to another test's clip) is reported as ``<file>:<line>: <why>`` and skipped, never fatal.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from ganaug.io import fsync_dir, read_versioned_json
from ganaug.listen.build import ANSWERS_DIR, FORMAT_VERSION, KEY_FILE, TEST_FILE, ListenError

__all__ = ["LISTENER_RE", "read_test", "read_key", "answer_path", "append_answer", "read_answers", "latest",
           "check_answer", "parse_json"]

LISTENER_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")   # whole string (fullmatch): no trailing newline


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


def answer_path(folder, listener) -> Path:
    if not isinstance(listener, str) or not LISTENER_RE.fullmatch(listener):
        raise ListenError(f"listener id {listener!r}: use 1-64 letters, digits, '-' or '_'")
    return Path(folder) / ANSWERS_DIR / f"{listener}.jsonl"


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text):
    """``json.loads`` without NaN/Infinity; any failure (bad syntax, nesting too deep) is a ``ValueError``."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON: {err}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _rating(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ListenError(f"{name}={value!r}: give a whole number from 1 to 5")
    return value


def _one_of(answer: dict, name: str, allowed, what: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or value not in allowed:
        raise ListenError(f"{name}={value!r}: {what}")
    return value


def check_answer(answer, item_ids, block_ids, choices) -> dict:
    """The record to store for one answer, or a ``ListenError`` naming the first field that is wrong.

    ``{"listener", "kind": "clip", "id", "label", "quality", "intelligibility"}`` (+ optional finite
    ``plays``, ``elapsed_ms``) or ``{"listener", "kind": "diversity", "block", "diversity"}``;
    ratings are whole numbers 1-5, ids and labels those of the test. A stored ``time`` is kept.
    """
    if not isinstance(answer, dict):
        raise ListenError(f"an answer is a JSON object, not {type(answer).__name__}")
    answer_path("", answer.get("listener"))   # checks the listener id
    record = {"listener": answer["listener"], "kind": answer.get("kind")}
    if record["kind"] == "clip":
        record.update(id=_one_of(answer, "id", item_ids, "not a clip of this test"),
                      label=_one_of(answer, "label", choices, f"choose one of {list(choices)}"),
                      quality=_rating(answer.get("quality"), "quality"),
                      intelligibility=_rating(answer.get("intelligibility"), "intelligibility"))
        for extra in ("plays", "elapsed_ms"):
            value = answer.get(extra)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
                record[extra] = value
    elif record["kind"] == "diversity":
        record.update(block=_one_of(answer, "block", block_ids, "not a block of this test"),
                      diversity=_rating(answer.get("diversity"), "diversity"))
    else:
        raise ListenError(f"kind={record['kind']!r}: answers are of kind 'clip' or 'diversity'")
    if isinstance(answer.get("time"), str):
        record["time"] = answer["time"]
    return record


def append_answer(path: Path, record: dict) -> None:
    """Append ``record`` as one JSON line; on disk (flush + fsync) when this returns."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_dir(path.parent)


def read_answers(paths, check) -> tuple[list[dict], list[str]]:
    """The answers in the given ``.jsonl`` files that ``check`` (a :func:`check_answer` of the test)
    accepts, in file order, as it returns them -> ``(records, problems)``: one ``<file>:<line>: <why>``
    for every line skipped."""
    records, problems = [], []
    for path in paths:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    records.append(check(parse_json(raw.decode("utf-8"))))
                except UnicodeDecodeError:
                    problems.append(f"{path}:{number}: not UTF-8 text")
                except ValueError as err:   # ListenError, or not JSON
                    problems.append(f"{path}:{number}: {err}")
    return records, problems


def latest(records: list[dict]) -> dict[tuple, dict]:
    """The last answer of each (listener, kind, clip id or block id), of records :func:`check_answer` accepted."""
    return {(r["listener"], r["kind"], r["id"] if r["kind"] == "clip" else r["block"]): r for r in records}
