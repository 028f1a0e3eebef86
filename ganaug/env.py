"""The environment a command runs in: a torch/torchaudio pair that loads, and the device.

``ganaug`` commands call :func:`check_torchaudio` before any work, so a torchaudio whose compiled
library does not match the installed torch (pip pairs them freely: torchaudio 2.11.1 with torch
2.11.0 fails with ``undefined symbol``) stops at once with one line that names both versions and
the pip command that fixes it, instead of a crash at the first spectrogram of a long run.
:func:`resolve_device` turns ``device: auto`` into ``cuda`` or ``cpu`` and says which, once;
:func:`torch_threads` holds a command's ``num_threads`` for all it trains, and restores the caller's.

``python -m ganaug.env`` prints the versions and runs what .ci/run proves before the tests: a
resample, an Fbank and a compiled torchaudio op (``lfilter``).
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from importlib import metadata

__all__ = ["TESTED", "EnvironmentMismatch", "check_torchaudio", "resolve_device", "torch_threads", "main"]

#: The torch/torchaudio pair of constraints.txt (tests/test_env.py keeps the two in step).
TESTED = {"torch": "2.11.0", "torchaudio": "2.11.0"}


class EnvironmentMismatch(ValueError):
    """An installed package cannot run with another one; the message says the fix."""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def fix_command() -> str:
    return f'pip install "torch=={TESTED["torch"]}" "torchaudio=={TESTED["torchaudio"]}"'


def check_torchaudio() -> None:
    """Import torchaudio (which loads its compiled library); a failure is an :class:`EnvironmentMismatch`."""
    if "torchaudio" in sys.modules:
        return
    try:
        import torchaudio  # noqa: F401
    except (OSError, ImportError, RuntimeError) as err:
        reason = re.sub(r"\s+", " ", str(err)).strip()[:200]
        raise EnvironmentMismatch(
            f"torchaudio {_version('torchaudio')} cannot load with torch {_version('torch')} ({reason}); "
            f"install a matching pair, e.g. {fix_command()} (or reinstall ganaug with pip install -c constraints.txt)"
        ) from None


def resolve_device(device, say: bool = True) -> str:
    """``"auto"`` (or None) -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other values unchanged.
    With ``say``, an ``auto`` choice is printed (stdout), so a GPU machine never trains on CPU unnoticed; a
    command resolves its device once, at its start."""
    import torch

    value = "auto" if device is None else str(device)
    if value != "auto":
        return value
    chosen = "cuda" if torch.cuda.is_available() else "cpu"
    if say:
        why = torch.cuda.get_device_name(0) if chosen == "cuda" else "no CUDA device visible to torch"
        print(f"device: {chosen} (auto: {why})", flush=True)
    return chosen


@contextmanager
def torch_threads(threads):
    """torch's CPU threads set to ``threads`` inside the block (0 or None: torch's as they are), the caller's
    count restored after it. On a busy machine more threads than free cores are many times slower (a
    reference classifier trained at 2 threads beside another job took 10x as long as at 1)."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def main() -> int:
    """Print the versions and prove torchaudio's compiled ops run (used by .ci/run)."""
    print(" ".join(f"{name} {_version(name)}" for name in ("torch", "torchaudio", "speechbrain", "datasets")))
    check_torchaudio()
    import torch
    import torchaudio.functional as AF
    from speechbrain.lobes.features import Fbank

    wav = torch.sin(torch.linspace(0, 2000, 16000)).unsqueeze(0)
    resampled = AF.resample(wav, 16000, 8000)
    feats = Fbank(n_mels=40)(wav)
    filtered = AF.lfilter(wav, torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]))   # a compiled torchaudio op
    assert resampled.shape == (1, 8000) and feats.shape[-1] == 40 and torch.isfinite(filtered).all()
    print(f"torchaudio runs: resample {tuple(resampled.shape)}, Fbank {tuple(feats.shape)}, lfilter {tuple(filtered.shape)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EnvironmentMismatch as err:
        print(f"ganaug: error: {err}", file=sys.stderr)
        sys.exit(2)
