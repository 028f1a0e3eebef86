"""Thin adapters of :mod:`ganaug.augment` to SpeechBrain and HuggingFace datasets.

Import the one you need (``ganaug.integrations.speechbrain`` or ``ganaug.integrations.hf``):
each pulls in its framework only when imported.
"""

__all__ = ["speechbrain", "hf"]
