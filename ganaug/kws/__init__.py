"""Keyword spotting: the compact classifier, its training recipe and results.

``ganaug kws HPARAMS.yaml`` calls :func:`main`. The classifier (``KWSClassifier``,
``save_classifier``, ``load_classifier``) lives in :mod:`ganaug.models.classifier`. One training
loop (:func:`ganaug.kws.brain.train_classifier`, a SpeechBrain Brain + Checkpointer) trains every
classifier: ``ganaug kws`` (both trainers) and the reference classifier of the metrics and the
label-consistency filter (:mod:`ganaug.kws.reference`, the kws recipe with a few overrides).
"""

from ganaug.models import KWSClassifier, load_classifier, save_classifier

__all__ = ["KWSClassifier", "load_classifier", "save_classifier", "main", "run_kws"]


def main(hparams_file, overrides=None) -> int:
    """Entry point of ``ganaug kws``: train, test, write results.json; returns 0."""
    from ganaug.kws.recipe import main as _main

    return _main(hparams_file, overrides)


def run_kws(hparams_file, overrides=None) -> dict:
    """Run the recipe and return the results dict (also written to results.json)."""
    from ganaug.kws.recipe import run_kws as _run

    return _run(hparams_file, overrides)
