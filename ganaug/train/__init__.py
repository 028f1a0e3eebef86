"""GAN training (WaveGAN's WGAN-GP and the options of issue 11): per-keyword or class-conditional, resumable,
DDP under torchrun.

- :mod:`ganaug.train.run`: ``main(hparams_file, overrides)`` behind ``ganaug train``; the keys of each model family.
- :mod:`ganaug.train.loop`: the one training loop, ``train_gan`` (resume, logs, checkpoints, Ctrl-C).
- :mod:`ganaug.train.options`: ``TrainOptions``, every setting of a run (the YAML keys), and which combine.
- :mod:`ganaug.train.step`: one step, composed from the parts below, every random draw on the device (``GanStep``).
- :mod:`ganaug.train.losses`: the GAN losses and penalties as pure functions.
- :mod:`ganaug.train.diffaug`: differentiable augmentation of the critic's input with its ``p`` (fixed or ADA).
- :mod:`ganaug.train.ema`: the generator's moving average with ramp-up.
- :mod:`ganaug.train.compiled`: ``torch.compile`` with an eager fall-back.
- :mod:`ganaug.train.state`: the resumable state on disk (safetensors + JSON, no pickle).
- :mod:`ganaug.train.logs`: progress bar, jsonl/TensorBoard stats, audio and spectrogram samples.
- :mod:`ganaug.train.distributed`: torchrun process groups and gradient averaging.

Nothing here imports SpeechBrain or HF datasets, so a bare GPU machine can train.
"""

from ganaug.train.loop import train_gan
from ganaug.train.options import TrainOptions
from ganaug.train.run import build_models, main, train

__all__ = ["main", "train", "train_gan", "TrainOptions", "build_models"]
