"""What a run shows while it trains: progress bar, jsonl + TensorBoard stats, audio and spectrograms.

Layout inside a checkpoint directory::

    logs/stats.jsonl                 one JSON object per log interval ({"step", "D/wgan", ...})
    logs/events.out.tfevents.*       the same scalars for TensorBoard
    samples/step_<N>/<label>_<i>.flac    generated clips per label (fixed latents across steps)
    samples/step_<N>.png             spectrogram grid: one row per label

Only process 0 makes a ``RunLog``; spectrograms are drawn by :mod:`ganaug.plot` (the one renderer,
no pyplot), TensorBoard through ``torch.utils.tensorboard`` when installed.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from ganaug.io import atomic_write, replace_folder, temp_folder

__all__ = ["RunLog", "spectrogram_grid"]


class RunLog:
    """Progress bar, stats files and samples of one checkpoint directory.

    ``start_step``: the step training resumes from; stats rows after it (written by a run that
    was killed before its next checkpoint) are dropped so the files describe one history.
    """

    def __init__(self, ckpt_dir: Path, start_step: int, max_steps: int, name: str,
                 progress: bool = True, tensorboard: bool = True):
        self.dir = Path(ckpt_dir) / "logs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stats_path = self.dir / "stats.jsonl"
        self._truncate_stats(start_step)
        self._stats = open(self.stats_path, "a")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional at run time: jsonl has the same numbers
                warnings.warn("tensorboard is not installed: stats go to logs/stats.jsonl only", stacklevel=2)
            else:
                self.writer = SummaryWriter(str(self.dir), purge_step=start_step + 1)
        self.bar = tqdm(total=max_steps, initial=start_step, desc=name, unit="step",
                        disable=not progress, dynamic_ncols=True)

    def _truncate_stats(self, start_step: int) -> None:
        if not self.stats_path.is_file():
            return
        keep = []
        for line in self.stats_path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= start_step:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by a kill
        atomic_write(self.stats_path, lambda tmp: Path(tmp).write_text("".join(f"{l}\n" for l in keep)))

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def stats(self, step: int, values: dict[str, float]) -> None:
        """One row of named scalars (losses as ``"D/wgan"``, ``"G/adv"``, ...)."""
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        self._stats.write(json.dumps(row) + "\n")
        self._stats.flush()
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in values.items() if k.startswith(("D/", "G/"))}, refresh=False)

    def samples_missing(self, step: int) -> bool:
        """Whether the samples of ``step`` (folder and grid) are not both on disk: a kill cut them short."""
        out = self._samples_dir(step)
        return not (out.is_dir() and out.with_suffix(".png").is_file())

    def _samples_dir(self, step: int) -> Path:
        return self.dir.parent / "samples" / f"step_{step:09d}"

    def samples(self, step: int, wavs: torch.Tensor, names: list[str], sample_rate: int) -> Path:
        """Write ``wavs`` ``(n, time)`` as flac named by ``names`` and their spectrogram grid.

        The clips go into a new folder swapped in whole, then the grid: a kill leaves the old
        samples or the new ones (and ``samples_missing``, which the resumed run re-renders)."""
        out = self._samples_dir(step)
        folder = temp_folder(out)
        counts: dict[str, int] = {}
        audio = wavs.detach().float().clamp(-1, 1).cpu()
        try:
            for wav, name in zip(audio, names):
                i = counts[name] = counts.get(name, -1) + 1
                sf.write(folder / f"{name}_{i}.flac", wav.numpy(), sample_rate, format="FLAC")
            replace_folder(folder, out)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        image = spectrogram_grid(audio, names, sample_rate)
        png = out.with_suffix(".png")
        atomic_write(png, lambda tmp: _save_png(image, tmp))
        if self.writer is not None:
            self.writer.add_image("samples/spectrograms", image, step, dataformats="HWC")
            self.writer.add_audio("samples/first", audio[0], step, sample_rate=sample_rate)
            self.writer.flush()
        return out

    def message(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        self._stats.close()
        if self.writer is not None:
            self.writer.close()


def _save_png(image: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG")


def spectrogram_grid(wavs: torch.Tensor, names: list[str], sample_rate: int) -> np.ndarray:
    """RGB image ``(H, W, 3)`` uint8: log-magnitude spectrograms, one row per distinct name."""
    from ganaug.plot import draw_spectrogram, figure_rgb, new_figure, spectrogram_db

    rows = list(dict.fromkeys(names))
    per_row = {r: [i for i, n in enumerate(names) if n == r] for r in rows}
    cols = max(len(v) for v in per_row.values())
    db = spectrogram_db(wavs, sample_rate)
    fig = new_figure(2.2 * cols, 1.6 * len(rows))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    seconds = wavs.shape[-1] / sample_rate
    for r, name in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(per_row[name]):
                draw_spectrogram(ax, db[per_row[name][c]], sample_rate, seconds)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.3)
    return figure_rgb(fig)


def finite_or_raise(values: dict[str, float], step: int, ckpt_dir: Path) -> None:
    """Stop a run whose losses became NaN/inf: GAN weights do not recover from it."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise FloatingPointError(
            f"non-finite losses {bad} at step {step}; the checkpoints in {ckpt_dir / 'train_state'} before it are "
            f"intact. Lower lr, or train without bf16 autocast (--amp=none), and rerun to resume"
        )
