"""Files that never tear: atomic writes, fsync, checksums, locks, and the versioned safetensors/JSON pair.

The floor every writer stands on (checkpoints, classifiers, train state, banks, caches,
downloads, logs). A write goes to a temp file in the target's folder, is fsynced and renamed
over the target, so a reader sees the old file or the new one, never half of either. Temp
names carry the writer's pid (``.<name>.<pid>.<random>.tmp``): the next process that writes into
the folder removes the temps of writers that are no longer alive (a killed run leaves nothing
behind for long). Files are created with the permissions the umask allows (``0o666 & ~umask``),
not ``mkstemp``'s 0600. Reading never unpickles; a damaged or foreign file is a
``CheckpointError`` that names it. A full disk or a read-only folder is a ``WriteError``
naming the folder; ``lock(folder)`` (the ``filelock`` package's lock) keeps a second writer out of
an output folder. A whole folder (a bank, a step's samples) is written as a ``temp_folder`` and put
in place by ``replace_folder``: one exchange, so a reader never meets half of it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointError", "WriteError", "FolderLocked", "cache_dir", "fsync_file", "fsync_dir", "atomic_write",
           "atomic_write_json", "save_tensors", "atomic_save_tensors", "load_tensors", "file_sha256", "read_versioned_json",
           "check_tensors", "lock", "LOCK_FILE", "temp_folder", "replace_folder", "umask", "apply_umask", "pid_alive",
           "remove_stale", "temp_pattern",
           "write_error"]

LOCK_FILE = ".ganaug.lock"
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_FULL = (errno.ENOSPC, errno.EDQUOT)


def cache_dir() -> Path:
    """ganaug's cache folder: ``$GANAUG_CACHE``, else ``~/.cache/ganaug`` (downloads, decoded clips, classifiers)."""
    return Path(os.environ.get("GANAUG_CACHE", Path.home() / ".cache" / "ganaug"))


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and what is wrong."""


class WriteError(OSError):
    """A folder ganaug cannot write to (read-only, full, or in use); ``str()`` is one line naming it."""

    def __str__(self) -> str:
        return str(self.strerror)


class FolderLocked(WriteError):
    """Another process holds ``lock(folder)``."""


def write_error(err: OSError, folder: str | Path, creating: bool = True) -> OSError:
    """A ``WriteError`` naming ``folder`` for a full disk or a read-only folder; other errors unchanged.

    ``creating``: the error came from creating a file in ``folder`` (so a permission error is
    the folder's); otherwise only a read-only file system counts as read-only.
    """
    if isinstance(err, WriteError):
        return err
    if err.errno in _FULL:
        return WriteError(err.errno, f"no space left on {folder}: free space there")
    if err.errno == errno.EROFS or (creating and err.errno in _READ_ONLY):
        return WriteError(err.errno, f"cannot write to {folder} (read-only)")
    return err


# -- permissions --------------------------------------------------------------------------------
def umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | Path, mode: int = 0o666) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would have (``mode & ~umask``)."""
    os.chmod(path, mode & ~umask())


# -- temp files of killed writers ------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_pattern(name: str = "") -> str:
    """The names ``atomic_write`` gives the temps of target ``name`` (any target when empty):
    ``.<name>.<pid>.<8 random>.tmp``."""
    target = re.escape(name) if name else ".+"
    return rf"\.{target}\.(?P<pid>\d+)\.[a-z0-9_]{{8}}\.tmp"


_SWEPT: set[str] = set()   # folders whose dead writers' temps this process already removed


def _sweep(folder: Path) -> None:
    """Remove the temps of dead writers in ``folder``, once per process and folder (a bank of
    thousands of clips is not listed again for every clip)."""
    key = os.path.abspath(folder)
    if key not in _SWEPT:
        remove_stale(folder, temp_pattern())
        _SWEPT.add(key)


def remove_stale(folder: str | Path, pattern: str) -> list[Path]:
    r"""Delete the entries of ``folder`` whose whole name matches ``pattern`` and whose writer is dead.

    ``pattern`` is a regular expression with a group ``(?P<pid>\d+)``, the writer's pid. Files
    and folders both (an extraction folder, a train-state folder); returns what was removed.
    """
    folder = Path(folder)
    pattern = re.compile(pattern)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or int(match["pid"]) == os.getpid() or pid_alive(int(match["pid"])):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def fsync_file(path: str | Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then move the temp file onto ``path`` (same folder, fsynced).

    The temp file is ``.<name>.<pid>.<random>.tmp``; temps left in the folder by dead writers
    are removed by the first write of a process into that folder. The result has the umask's permissions. A full disk or a
    read-only folder raises ``WriteError`` naming the folder, and leaves no temp behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_error(err, path.parent) from err
    os.close(fd)
    try:
        write(tmp)
        fsync_file(tmp)
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_error(err, path.parent, creating=False) from err
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | Path, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")

    atomic_write(path, write)


# -- whole folders -------------------------------------------------------------------------------------
def temp_folder(target: str | Path) -> Path:
    """A new empty folder beside ``target``, named as ``atomic_write`` names temps (``.<name>.<pid>.<random>.tmp``,
    removed by the next writer once this process is dead), with the umask's permissions."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep(target.parent)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    except OSError as err:
        raise write_error(err, target.parent) from err
    apply_umask(folder, 0o777)
    return folder


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(new: str | Path, target: str | Path) -> None:
    """Put the complete folder ``new`` (a :func:`temp_folder` of ``target``) in ``target``'s place.

    A reader sees the old folder or the new one, never a mix: an existing ``target`` is exchanged
    with ``new`` in one rename (Linux), then removed; where the system cannot exchange, it is
    renamed aside first (a moment without ``target``). Its files all go, so nothing of the old
    contents outlives the swap.
    """
    new, target = Path(new), Path(target)
    for path in new.rglob("*"):
        if path.is_file():
            fsync_file(path)
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)                       # the old contents, now under the temp name
    else:
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
        os.rename(target, aside / "old")
        os.rename(new, target)
        shutil.rmtree(aside)
    fsync_dir(target.parent)


# -- locks -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def lock(folder: str | Path, fix: str = "wait for it to finish or choose another --output_folder", wait: bool = False):
    """Hold an exclusive lock on ``folder`` (``<folder>/.ganaug.lock``, the ``filelock`` package's
    ``flock``) while the block runs.

    The lock dies with the process (a crash or SIGKILL releases it); the file stays, holding the
    holder's pid and command. A folder held by another process (or by another ``lock`` of this
    one) raises ``FolderLocked`` naming the folder and the holder, or with ``wait=True`` is waited
    for; a folder that cannot be written raises ``WriteError`` (read-only).
    """
    import filelock

    folder = Path(folder)
    path = folder / LOCK_FILE
    held = filelock.FileLock(str(path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        held.acquire(blocking=wait, poll_interval=0.2)
    except filelock.Timeout:
        raise FolderLocked(errno.EBUSY, f"{folder} is in use by {_holder(path)}: {fix}") from None
    except OSError as err:
        raise write_error(err, folder) from err
    try:
        _write_holder(path)
        yield path
    finally:
        held.release()


def _write_holder(path: Path) -> None:
    """Name this process in the lock file (through a second descriptor: closing it keeps the ``flock``)."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({command[:300]}) since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip() or "another process"
    except OSError:
        return "another process"


# -- safetensors and versioned JSON ------------------------------------------------------------------
def _clean_key(key: str) -> str:
    """Drop wrapper prefixes (torch.compile's ``_orig_mod.``, DDP's ``module.``) from a weight name."""
    key = key.replace("_orig_mod.", "")
    return key[len("module."):] if key.startswith("module.") else key


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata=None) -> None:
    """``safetensors.torch.save_file`` of contiguous CPU copies, not atomic (the train state's temp
    folder calls it). A failed write (safetensors reports a full disk as ``SafetensorError``) is an
    ``OSError`` with its errno, so ``write_error`` makes it one line."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        save_file(clean, str(path), metadata=metadata)
    except SafetensorError as err:
        code = re.search(r"\(os error (\d+)\)|code: (\d+)", str(err))   # "No space left on device (os error 28)"
        raise OSError(int(code[1] or code[2]) if code else errno.EIO, f"{path}: {err}") from err


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata=None) -> None:
    """:func:`save_tensors` through :func:`atomic_write`, without wrapper prefixes (``_orig_mod.`` of
    torch.compile); a full disk is a ``WriteError`` naming the folder."""
    clean = {_clean_key(k): v for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_tensors(tmp, clean, metadata))


def load_tensors(path: str | Path, device="cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a complete safetensors file ({err}); it may be truncated") from err


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_versioned_json(path: str | Path, format_version: int, missing: str = "") -> dict:
    """A JSON object whose ``format_version`` must be ``format_version``; clear errors naming the file.

    ``missing`` completes the message for a missing file (what the folder should be).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing{'. ' + missing if missing else ''}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); the file is damaged") from err
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != format_version:
        raise CheckpointError(f"{path}: format_version {version!r} is not one this ganaug reads ({format_version}); "
                              f"upgrade ganaug or re-export the file")
    return config


def check_tensors(path: str | Path, tensors: dict, expected: dict) -> None:
    """Every tensor of ``expected`` (a state dict) present in ``tensors`` with its shape, and no other."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, the config's model "
                                  f"expects {tuple(expected[name].shape)}")
