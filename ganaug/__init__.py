"""ganaug: WaveGAN data augmentation for keyword spotting.

Public API (imported lazily so that ``import ganaug`` stays cheap and GAN training never pulls
in SpeechBrain or HF datasets)::

    from ganaug import GanAugment, GanMixDataset, KeywordDataset, SyntheticBank, load_generator
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "AudioError": "ganaug.audio",
    "load_audio": "ganaug.audio",
    "KeywordDataset": "ganaug.data",
    "load_generator": "ganaug.checkpoint",
    "GanAugment": "ganaug.augment",
    "GanMixDataset": "ganaug.augment",
    "SyntheticBank": "ganaug.augment",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganaug' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
