"""ganaug.io, the floor every writer stands on: pid-tagged temps and their clean-up, umask, locks,
a full disk and a read-only folder, with real processes and (where this machine allows it, as
root) a real small tmpfs."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ganaug.io import (FolderLocked, WriteError, atomic_save_tensors, atomic_write, atomic_write_json, lock,
                       remove_stale, replace_folder, temp_folder, temp_pattern, umask)

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def spawn(code: str, *args: str) -> subprocess.Popen:
    """A real Python process running ``code``; it prints "ready" when it reached the point to test."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stderr.read()


STALLED_WRITER = """
    import sys, time
    from ganaug.io import atomic_write
    def write(tmp):
        open(tmp, "w").write("half a file")
        print("ready", flush=True)
        time.sleep(600)
    atomic_write(sys.argv[1], write)
"""


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


# -- pid-tagged temp files ----------------------------------------------------------------------------
def test_temps_of_killed_writers_carry_their_pid_and_are_removed_by_the_next_writer(tmp_path):
    target = tmp_path / "generator.safetensors"
    killed = spawn(STALLED_WRITER, target)
    wait_ready(killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    orphan = [p.name for p in tmp_path.iterdir()]
    assert len(orphan) == 1 and re.fullmatch(temp_pattern(target.name), orphan[0])
    assert orphan[0].startswith(f".{target.name}.{killed.pid}.")                   # .<name>.<pid>.<rand>.tmp
    live = spawn(STALLED_WRITER, target)                                           # the next writer
    try:
        wait_ready(live)
        temps = [p.name for p in tmp_path.iterdir()]
        assert len(temps) == 1 and temps[0].startswith(f".{target.name}.{live.pid}.")   # the orphan is gone
        atomic_write_json(target, {"new": True})                                   # a writer beside a live one
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, *temps])   # the live temp stays
        assert json.loads(target.read_text()) == {"new": True}
    finally:
        live.kill()
        live.wait()


def test_remove_stale_only_touches_names_of_its_pattern(tmp_path):
    pid = dead_pid()
    stale_dir = tmp_path / f".fsdd.tmp-{pid}"
    stale_dir.mkdir()
    (stale_dir / "x.wav").write_bytes(b"x")
    mine = tmp_path / f".fsdd.tmp-{os.getpid()}"
    mine.mkdir()
    other = tmp_path / f".fsdd_old.tmp-{pid}"
    other.mkdir()
    removed = remove_stale(tmp_path, r"\.fsdd\.tmp-(?P<pid>\d+)")
    assert removed == [stale_dir] and mine.is_dir() and other.is_dir()


def test_a_failed_write_leaves_no_temp_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "config.json"
    atomic_write_json(target, {"v": 1})

    def boom(tmp):
        Path(tmp).write_text("partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"] and json.loads(target.read_text()) == {"v": 1}


# -- umask ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert umask() == mask
        atomic_write_json(tmp_path / "sub" / "config.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sub" / "config.json").stat().st_mode) == mode      # mkstemp alone gives 0600
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~mask


# -- locks -----------------------------------------------------------------------------------------------
HOLDER = """
    import sys, time
    from ganaug.io import lock
    with lock(sys.argv[1]):
        print("ready", flush=True)
        time.sleep(600)
"""


def test_lock_refuses_a_second_process_names_the_holder_and_dies_with_it(tmp_path):
    folder = tmp_path / "run"
    holder = spawn(HOLDER, folder)
    try:
        wait_ready(holder)
        with pytest.raises(FolderLocked) as caught:
            with lock(folder):
                pass
        message = str(caught.value)
        assert "\n" not in message and str(folder) in message and f"pid {holder.pid}" in message
        assert "choose another --output_folder" in message
    finally:
        holder.send_signal(signal.SIGKILL)                  # a crash releases the lock
        holder.wait()
    with lock(folder) as path:
        assert f"pid {os.getpid()}" in path.read_text()


def test_lock_with_wait_blocks_until_the_holder_is_gone(tmp_path):
    folder = tmp_path / "reference.training"
    holder = spawn(HOLDER, folder)
    wait_ready(holder)
    threading.Timer(1.0, holder.send_signal, (signal.SIGKILL,)).start()
    with lock(folder, wait=True) as path:                 # no FolderLocked: it waits for the holder to die
        assert f"pid {os.getpid()}" in path.read_text()
        assert holder.wait(timeout=60) == -signal.SIGKILL     # the lock came free only when the kill did it


FILELOCK_HOLDER = """
    import sys, time, filelock
    with filelock.FileLock(sys.argv[1] + "/.ganaug.lock"):
        print("ready", flush=True)
        time.sleep(600)
"""


def test_lock_is_the_filelock_packages_lock_both_ways(tmp_path):
    import filelock

    folder = tmp_path / "run"
    folder.mkdir()
    holder = spawn(FILELOCK_HOLDER, folder)                # the maintained package's lock on the same file
    try:
        wait_ready(holder)
        with pytest.raises(FolderLocked, match=f"{folder} is in use by"):
            with lock(folder):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with lock(folder) as path:
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(str(path)).acquire(blocking=False)


# -- whole folders swapped in ---------------------------------------------------------------------------------
def test_replace_folder_swaps_a_whole_folder_with_no_moment_without_it(tmp_path):
    target = tmp_path / "bank"
    seen_missing, done = [], threading.Event()

    def swap_many():
        for generation in range(40):
            new = temp_folder(target)
            (new / "marker").write_text(str(generation))
            (new / f"only_in_{generation}").write_text("x")
            replace_folder(new, target)
        done.set()

    writer = threading.Thread(target=swap_many)
    writer.start()
    while not done.is_set():
        if not (target / "marker").is_file() and (target.parent / ".started").exists():
            seen_missing.append(True)
        if target.is_dir():
            (target.parent / ".started").touch()
    writer.join()
    assert not seen_missing                                       # an exchange, not delete-then-rename
    assert sorted(p.name for p in target.iterdir()) == ["marker", "only_in_39"]   # nothing of the old ones
    assert sorted(p.name for p in tmp_path.iterdir()) == [".started", "bank"]     # no temp left
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask()               # not mkdtemp's 0700


def test_a_full_disk_under_safetensors_is_a_write_error_and_no_temp(tmp_path, monkeypatch):
    import torch

    folder = tmp_path / "small_fs"
    mounted = mount_tmpfs(folder, "1m")
    try:
        if not mounted:   # safetensors reports ENOSPC as a SafetensorError, as it does on a full disk
            from safetensors import SafetensorError

            def full(tensors, path, metadata=None):
                raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
            monkeypatch.setattr("ganaug.io.save_file", full)
        with pytest.raises(WriteError) as caught:                 # was: a SafetensorError traceback
            atomic_save_tensors(folder / "generator.safetensors", {"w": torch.zeros(1 << 20)})
        assert str(caught.value) == f"no space left on {folder}: free space there"
        assert list(folder.iterdir()) == []
    finally:
        if mounted:
            umount(folder)


# -- a real small file system: full, read-only -------------------------------------------------------------
def mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """``folder`` made read-only while the block runs: a read-only tmpfs where this machine lets the tests
    mount one (root), else permissions (enforced for non-root users)."""
    mounted = mount_tmpfs(folder, "1m")
    try:
        if mounted:
            assert subprocess.run(["mount", "-o", "remount,ro", str(folder)]).returncode == 0
        else:
            folder.chmod(0o555)
        yield folder
    finally:
        if mounted:
            umount(folder)
        else:
            folder.chmod(0o755)


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MB tmpfs (a real full disk) where this machine lets the tests mount one, else ``None``."""
    folder = tmp_path / "small_fs"
    mounted = mount_tmpfs(folder, "2m")
    yield folder if mounted else None
    if mounted:
        umount(folder)


def test_full_disk_is_a_one_line_error_naming_the_folder_and_no_temp_is_left(small_fs, tmp_path):
    if small_fs is None:   # no mount here: fill a folder's budget instead with a writer that hits ENOSPC
        small_fs = tmp_path / "simulated"

        def fill(tmp):
            raise OSError(errno.ENOSPC, "No space left on device")
    else:
        def fill(tmp):
            with open(tmp, "wb") as f:
                f.write(b"\0" * (4 << 20))                  # twice the file system
    with pytest.raises(WriteError) as caught:
        atomic_write(small_fs / "big.bin", fill)
    assert str(caught.value) == f"no space left on {small_fs}: free space there"
    assert list(small_fs.iterdir()) == []


def test_read_only_folder_is_a_one_line_error(tmp_path):
    folder = tmp_path / "ro"
    with read_only_folder(folder):
        with pytest.raises(WriteError) as caught:
            atomic_write_json(folder / "config.json", {})
        assert str(caught.value) == f"cannot write to {folder} (read-only)"
        with pytest.raises(WriteError, match="read-only"):
            with lock(folder):
                pass
