"""Generator evaluation: IS, modified IS, FID, KID, |D|train, |D|self and label accuracy.

The metrics are judged by a reference keyword classifier trained on real data
(:mod:`ganaug.kws.reference`, loaded by :mod:`ganaug.metrics.classifier`), registered by name in :data:`METRICS`
(:mod:`ganaug.metrics.registry`: IS, FID and KID are torchmetrics' with the classifier as their feature
extractor), and computed by :func:`evaluate_generator`, which the ``ganaug evaluate`` command, the ablation
and the report call::

    from ganaug.metrics import evaluate_generator, format_table
    result = evaluate_generator("runs/cond", "data/speech_commands", num_clips=1000)
    print(format_table(result))       # generated vs real test speakers

The math torchmetrics lacks lives in :mod:`ganaug.metrics.functional`; the table in :mod:`ganaug.metrics.table`.
"""

from ganaug.metrics.classifier import classify, load_reference, reference_classifier
from ganaug.metrics.evaluate import evaluate_generator
from ganaug.metrics.functional import label_accuracy, modified_inception_score, nn_distance, nn_features
from ganaug.metrics.registry import (DEFAULT_METRICS, METRICS, ClassifierFeature, ClipSet, MetricContext,
                                     register_metric, run_metrics)
from ganaug.metrics.table import format_table, write_metrics

__all__ = [
    "evaluate_generator", "format_table", "write_metrics",
    "reference_classifier", "load_reference", "classify",
    "METRICS", "DEFAULT_METRICS", "register_metric", "run_metrics", "ClipSet", "MetricContext", "ClassifierFeature",
    "modified_inception_score", "nn_features", "nn_distance", "label_accuracy",
]
