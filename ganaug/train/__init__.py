"""WaveGAN training (WGAN-GP): per-keyword or class-conditional, resumable, DDP under torchrun.

- :mod:`ganaug.train.run`: ``main(hparams_file, overrides)`` behind ``ganaug train``.
- :mod:`ganaug.train.loop`: the one training loop, ``train_gan`` (resume, logs, checkpoints, Ctrl-C).
- :mod:`ganaug.train.options`: ``TrainOptions``, every setting of a run (the YAML keys).
- :mod:`ganaug.train.step`: one step's maths with every random draw on the device (``GanStep``).
- :mod:`ganaug.train.losses`: GAN losses as named terms, the gradient penalty and R1.
- :mod:`ganaug.train.diffaug`: differentiable augmentation of the critic's input, ADA's adaptive p.
- :mod:`ganaug.train.state`: the resumable state on disk (safetensors + JSON, no pickle).
- :mod:`ganaug.train.logs`: progress bar, jsonl/TensorBoard stats, audio and spectrogram samples.
- :mod:`ganaug.train.distributed`: torchrun process groups and gradient averaging.

Nothing here imports SpeechBrain or HF datasets, so a bare GPU machine can train.
"""

from ganaug.train.loop import train_gan
from ganaug.train.losses import gradient_penalty
from ganaug.train.options import TrainOptions
from ganaug.train.run import build_models, main, train

__all__ = ["main", "train", "train_gan", "TrainOptions", "gradient_penalty", "build_models"]
