"""Fetch Speech Commands v0.02 and FSDD: real URLs, sha256 checks, a cache, atomic extraction.

Archives are cached in ``$GANAUG_CACHE`` (default ``~/.cache/ganaug``); an interrupted download
resumes from its ``.part`` file (HTTP Range); extraction goes to a temporary folder that is
renamed into place only when complete, so a killed run never leaves a half-extracted dataset.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ganaug.io import cache_dir, file_sha256, remove_stale

__all__ = ["REMOTES", "download", "cache_dir"]

COMPLETE_MARKER = ".ganaug_complete"


@dataclass(frozen=True)
class Remote:
    url: str
    sha256: str
    folder: str  # name of the extracted folder under root
    members: str = ""  # only extract members under this archive path (flattened into folder)


REMOTES = {
    # Warden 2018, CC BY 4.0. 105,829 clips; ships validation_list.txt / testing_list.txt.
    "speech_commands_v2": Remote(
        url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        folder="speech_commands_v0.02",
    ),
    # Jakobovski et al., CC BY-SA 4.0. Tag v1.0.9: 3,000 clips, 6 speakers.
    "fsdd": Remote(
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz",
        sha256="8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0",
        folder="fsdd",
        members="free-spoken-digit-dataset-1.0.9/recordings/",
    ),
}


def _fetch(url: str, dest: Path, name: str) -> None:
    """Download ``url`` to ``dest``, resuming a ``.part`` file left by an earlier attempt."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except (urllib.error.URLError, OSError) as err:
        raise ConnectionError(
            f"could not download {name} from {url} ({err}). Offline? Fetch the archive elsewhere and "
            f"put it at {dest}, or pass url='file:///path/to/archive', or point data_folder at an "
            f"extracted copy (e.g. --data_folder=/path/to/speech_commands)."
        ) from err
    with response:
        resumed = have and getattr(response, "status", 200) == 206
        mode = "ab" if resumed else "wb"
        total = response.headers.get("Content-Length")
        total = int(total) + (have if resumed else 0) if total else None
        with open(part, mode) as f, tqdm(total=total, initial=have if resumed else 0, unit="B",
                                         unit_scale=True, desc=f"download {name}") as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
    os.replace(part, dest)


def _extract(archive: Path, target: Path, members: str) -> None:
    remove_stale(target.parent, rf"\.{re.escape(target.name)}\.tmp-(?P<pid>\d+)")   # left by killed runs
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        for member in tqdm(tar.getmembers(), desc=f"extract {archive.name}", unit="file"):
            if members:
                if not member.name.startswith(members) or not member.isfile():
                    continue
                member.name = member.name[len(members):]
            tar.extract(member, tmp, filter="data")
    (tmp / COMPLETE_MARKER).write_text(archive.name)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def _local_url(name: str, url: str | Path) -> str | Path:
    """``url`` as a URL urllib fetches, or the ``Path`` of an extracted folder it names."""
    from ganaug.data.layouts import detect_layout

    text = str(url)
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"url={text!r}: no such file or folder, and not a URL; give an http(s):// or "
                                    f"file:// URL, the path of the {name} archive, or a folder of the extracted data")
        text = path.resolve().as_uri()
    if text.startswith("file://"):
        path = Path(urllib.request.url2pathname(text[len("file://"):])).resolve()
        if path.is_dir():
            try:
                detect_layout(path)
            except ValueError as err:
                raise ValueError(f"url={str(url)!r} is a folder but not an extracted {name} dataset: {err}") from None
            return path
    elif not text.startswith(("http://", "https://", "ftp://")):
        raise ValueError(f"url={text!r}: ganaug downloads http(s)://, ftp:// and file:// URLs; give one of those, "
                         f"a local archive, or the folder of the extracted data")
    return text


def download(name: str, root: str | Path, url: str | None = None, sha256: str | None = None) -> Path:
    """Download and extract dataset ``name`` under ``root``; returns the data folder.

    Args:
        name: "speech_commands_v2" or "fsdd".
        root: folder that receives the extracted dataset (``root/<folder>``).
        url: another location of the same archive (a mirror, ``file:///...`` or a path of a local
            copy), or a local folder that already holds the extracted dataset: that folder is
            checked (its layout) and returned as it is.
        sha256: expected checksum when ``url`` points to a different archive than the official one.

    Re-running is cheap: a completed extraction is found by its marker file and returned.
    """
    if name not in REMOTES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(REMOTES)}")
    remote = REMOTES[name]
    target = Path(root) / remote.folder
    if (target / COMPLETE_MARKER).exists():
        return target
    url = _local_url(name, url) if url else remote.url
    if isinstance(url, Path):
        return url
    expected = sha256 or remote.sha256
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name
    if archive.exists() and file_sha256(archive) != expected:
        archive.unlink()  # stale or corrupted copy: fetch again
    if not archive.exists():
        _fetch(url, archive, name)
        actual = file_sha256(archive)
        if actual != expected:
            bad = archive.with_name(archive.name + ".bad")
            os.replace(archive, bad)
            raise ValueError(
                f"{name}: checksum mismatch for {url} (expected sha256 {expected}, got {actual}); "
                f"the file was moved to {bad}. Re-run to download again, or pass sha256= for another archive."
            )
    Path(root).mkdir(parents=True, exist_ok=True)
    _extract(archive, target, remote.members)
    return target
