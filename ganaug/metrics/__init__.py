"""Generator evaluation: IS, modified IS, FID, |D|train, |D|self and label accuracy.

The metrics are judged by a reference keyword classifier trained on real data
(:mod:`ganaug.kws.reference`, loaded by :mod:`ganaug.metrics.classifier`), registered by name in :data:`METRICS`
(:mod:`ganaug.metrics.registry`), and computed by :func:`evaluate_generator`, which the
``ganaug evaluate`` command, the ablation and the report call::

    from ganaug.metrics import evaluate_generator, format_table
    result = evaluate_generator("runs/cond", "data/speech_commands", num_clips=1000)
    print(format_table(result))       # generated vs real test speakers

The math alone lives in :mod:`ganaug.metrics.functional`.
"""

from ganaug.metrics.classifier import classify, load_reference, reference_classifier
from ganaug.metrics.evaluate import evaluate_generator, format_table
from ganaug.metrics.functional import (
    frechet_distance, frechet_distance_from_features, inception_score, label_accuracy,
    modified_inception_score, nn_distance, nn_features,
)
from ganaug.metrics.registry import DEFAULT_METRICS, METRICS, ClipSet, MetricContext, register_metric, run_metrics

__all__ = [
    "evaluate_generator", "format_table",
    "reference_classifier", "load_reference", "classify",
    "METRICS", "DEFAULT_METRICS", "register_metric", "run_metrics", "ClipSet", "MetricContext",
    "inception_score", "modified_inception_score", "frechet_distance", "frechet_distance_from_features",
    "nn_features", "nn_distance", "label_accuracy",
]
