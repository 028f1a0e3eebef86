"""``ganaug evaluate CKPT --data DIR``: score a generator, with real-data reference values.

:func:`evaluate_generator` is the library function (the ablation and the report call it);
:func:`main` is the command: it writes ``metrics.json`` + ``metrics.md`` and prints the table.

Protocol: ``num_clips`` clips are generated through the one generator source of
:mod:`ganaug.augment` (labels balanced for a conditional generator or a per-keyword run folder;
clip ``i`` is a pure function of its label and ``(seed, i)``). The *scorer* is the reference
classifier of ``--data``'s TRAIN split (:func:`ganaug.kws.reference.ensure_reference`: found at
``reference_dir``, e.g. where the demo trained it, or trained once). The "real" column scores
the held-out TEST speakers' clips of the same labels in the same way: IS of real test clips,
FID real test vs real train, |D|train of test clips to the training clips, the scorer's test
accuracy. Set sizes differ (generated: ``num_clips``, real: the test split), which biases FID
upward for the smaller set; |D|self is computed on the same number of clips for both columns.

With ``min_confidence``, a *filter* (the generator's own reference classifier, trained on the
TRAIN split the generator saw, or ``filter_classifier``; a separate model from the scorer, so a
``--data`` of other speakers judges it independently) keeps the clips whose intended label has a
posterior >= ``min_confidence``; ``acceptance`` (per label) and ``label_acc_filtered`` (the
scorer's label accuracy on the kept clips) are added to the result.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import torch

from ganaug.augment.filter import not_independent
from ganaug.metrics.classifier import load_reference, real_split, reference_classifier
from ganaug.metrics.registry import DEFAULT_METRICS, ClipSet, MetricContext, run_metrics
from ganaug.metrics.table import format_table, write_metrics

__all__ = ["evaluate_generator", "format_table", "write_metrics", "main"]

UNCONDITIONAL = "_unconditional_"   # the source's name for the clips of an unconditional generator


def _source(ckpt):
    """``(GeneratorSource, kind)``: "conditional", "unconditional" or "per_keyword" (the one generator
    source of :mod:`ganaug.augment`, which also serves GanAugment, banks, TSTR, the report and listen)."""
    from ganaug.augment.source import GeneratorSource

    source = GeneratorSource(ckpt, unconditional=True)
    return source, {"per_label": "per_keyword"}.get(source.kind, source.kind)


def _generate(source, names: list, seed: int, sample_rate: int, num_samples: int, device=None) -> torch.Tensor:
    """``(len(names), num_samples)`` clips at ``sample_rate`` on the CPU (made on ``device``) through
    :func:`ganaug.augment.source.synthesize` (``None`` names an unconditional generator's clips)."""
    from ganaug.augment.source import synthesize

    wavs, _, _ = synthesize(source, [None if n == UNCONDITIONAL else n for n in names], seed=seed,
                            sample_rate=sample_rate, num_samples=num_samples, device=device, batch_size=256)
    return wavs


def _generator_spectrograms(source, kind: str, labels, seed: int, n: int = 256) -> torch.Tensor | None:
    """For TiFGAN, the generator's own log-magnitudes (before PGHI), as the TiFGAN paper scores them."""
    from ganaug.functional import sample_latents

    paths = {}
    for label, (path, index) in source.entries.items():
        paths.setdefault(str(path), []).append((label, index))
    if any(source.configs[p].get("model") != "tifgan" for p in paths):
        return None
    rng = torch.Generator().manual_seed(seed + 1)
    logmags = []
    for path, entries in paths.items():
        g = source.model(entries[0][0])
        count = n if kind != "per_keyword" else max(1, n // len(paths))
        z = sample_latents(count, g.latent_dim, rng)
        index = None if entries[0][1] is None else torch.tensor([g.label_names.index(labels[i % len(labels)])
                                                                 for i in range(count)])
        with torch.inference_mode():
            logmags.append(g.to_log_magnitude(g(z, index)).float().cpu())
    return torch.cat(logmags)


def _data_keywords(data) -> list[str]:
    from ganaug.data import KeywordDataset

    names = [n for n in KeywordDataset(data, num_samples=None).label_names if not n.startswith("_")]
    if not names:
        raise ValueError(f"--data {data}: no keyword labels found (only {KeywordDataset(data).label_names})")
    return names


def _label_filter(source, filter_classifier, labels, sample_rate, min_confidence, device, progress, data=None,
                  recipe=None):
    """The generator's own label filter (:class:`ganaug.augment.filter.LabelFilter`): ``filter_classifier``,
    or the reference classifier of the TRAIN split the generator was trained on (trained when missing, on
    ``data`` when the folder of its config.json is not here)."""
    from ganaug.augment.filter import LabelFilter
    from ganaug.kws.generate import filter_for_config

    if filter_classifier is None:
        config = next(iter(source.configs.values()))
        try:
            filter_classifier = filter_for_config(config, device, data, progress, overrides=recipe)
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"--filter_classifier: {err}") from err
    load_reference(filter_classifier, labels, sample_rate, device=device, option="--filter_classifier")  # checks it
    return LabelFilter(filter_classifier, min_confidence, device=device)


def _check_args(num_clips, min_confidence, data: Path, device) -> torch.device:
    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 2:
        raise ValueError(f"--num-clips {num_clips!r}: need an integer >= 2 (FID needs a covariance)")
    if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"--min_confidence {min_confidence!r}: give a posterior threshold in [0, 1], e.g. 0.8")
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder; give a Speech Commands- or FSDD-layout folder")
    if str(device or "").startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here; use --device cpu")
    from ganaug.env import resolve_device

    return torch.device(resolve_device(device, say=False))


def _real_acceptance(label_filter, data: Path | None, labels: list, sample_rate: int) -> dict:
    """Per label, the share of ``data``'s real VALID clips whose filter posterior of their label reaches the
    filter's threshold (what the threshold means for real speech), or {} without data."""
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload

    if data is None:
        return {}
    valid = KeywordDataset(data, labels=labels, split="valid", sample_rate=sample_rate, num_samples=sample_rate)
    if not len(valid):
        return {}
    wavs, idx = preload(valid, progress=False)
    names = [labels[i] for i in idx.tolist()]
    accepted = label_filter.accept(wavs, names, sample_rate)
    return {label: float(accepted[[n == label for n in names]].double().mean()) if label in names else None
            for label in labels}


def _real_sets(data: Path, labels: list, label_names: list, sample_rate: int, max_train: int, seed: int):
    """``(train, test)`` ClipSets of ``data``'s real clips, labels as indices into the classifier's ``label_names``;
    at most ``max_train`` (seeded) training clips."""
    to_index = {name: i for i, name in enumerate(label_names)}
    sets = []
    for split in ("train", "test"):
        wavs, idx, _ = real_split(data, labels, split, sample_rate)
        # dataset indices follow `labels`; the classifier may know more labels in another order
        sets.append([wavs.float(), torch.tensor([to_index[labels[i]] for i in idx.tolist()], dtype=torch.long)])
    train, test = sets
    if train[0].shape[0] > max_train:
        keep = torch.randperm(train[0].shape[0], generator=torch.Generator().manual_seed(seed))[:max_train].sort().values
        train = [train[0][keep], train[1][keep]]
    if test[0].shape[0] < 2:
        raise ValueError(f"--data {data}: the TEST split has {test[0].shape[0]} clips of {labels}; the real-data "
                         f"reference needs a few held-out speakers (use a folder with more speakers)")
    return ClipSet("real train", *train), ClipSet("real test", *test)


def _generated_set(source, kind: str, labels: list, label_names: list, num_clips: int, seed: int, sample_rate: int,
                   num_samples: int, device, metrics) -> tuple[ClipSet, list]:
    """``num_clips`` clips (labels balanced) and their names; TiFGAN's own spectrograms for "consistency"."""
    to_index = {name: i for i, name in enumerate(label_names)}
    names = [UNCONDITIONAL] * num_clips if kind == "unconditional" else [labels[i % len(labels)] for i in range(num_clips)]
    wavs = _generate(source, names, seed, sample_rate, num_samples, device)
    clips = ClipSet("generated", wavs, None if kind == "unconditional" else torch.tensor([to_index[n] for n in names]))
    logmag = _generator_spectrograms(source, kind, labels, seed) if "consistency" in metrics else None
    if logmag is not None:
        clips.cache["logmag"] = logmag
    return clips, names


def _filter_result(ctx, generated: ClipSet, names, labels, source, clf_dir, filter_classifier, min_confidence,
                   sample_rate, device, progress, data=None, recipe=None) -> dict:
    """acceptance and the scorer's label accuracy of the clips the filter kept, overall and per label, the share
    of ``data``'s real VALID clips the filter accepts at the same threshold (per label, beside the generated
    clips' share), and the ``filter`` entry of the result."""
    label_filter = _label_filter(source, filter_classifier, labels, sample_rate, min_confidence, device, progress,
                                 data, recipe)
    accepted = label_filter.accept(generated.wavs, names, sample_rate)
    correct = ctx.probs(generated).argmax(1) == generated.labels
    out = {"acceptance": {}, "label_acc_filtered_per_label": {}}
    for label in labels:
        rows = torch.tensor([n == label for n in names])
        kept = accepted & rows
        out["acceptance"][label] = float(kept.sum() / rows.sum()) if rows.any() else None
        out["label_acc_filtered_per_label"][label] = float(correct[kept].double().mean()) if kept.any() else None
    out["real_valid_acceptance"] = _real_acceptance(label_filter, data, labels, sample_rate)
    out["acceptance_overall"] = float(accepted.double().mean())
    out["label_acc_filtered"] = float(correct[accepted].double().mean()) if accepted.any() else None
    out["num_accepted"] = int(accepted.sum())
    out["filter"] = {"folder": str(label_filter.path.resolve()), "min_confidence": min_confidence,
                     "label_names": label_filter.label_names}
    if not_independent(source.configs, label_filter.path):
        out["filter"]["trained_against"] = True      # the generator was trained to please the filter
    if out["filter"]["folder"] == str(clf_dir.resolve()):
        # --data is the generator's own training data: one classifier scores and filters, so every kept
        # clip is scored right. Say so where the number is, so nobody reports it as a result.
        out["filter"]["same_as_scorer"] = True
    return out


def evaluate_generator(ckpt, data, classifier=None, num_clips: int = 1000, device=None, seed: int = 0,
                       metrics=DEFAULT_METRICS, max_train: int = 5000, sample_rate: int = 16000,
                       progress: bool = True, recipe: dict | None = None, min_confidence: float | None = None,
                       filter_classifier=None) -> dict:
    """Score the generator(s) in ``ckpt`` against the real clips of ``data``; returns the metrics dict.

    Args:
        ckpt: checkpoint directory (conditional or unconditional) or per-keyword run folder.
        data: real data folder (Speech Commands or FSDD layout); its speaker-disjoint splits are used.
        classifier: the scorer's folder; ``None`` = the reference classifier of ``data``'s TRAIN split
            at ``reference_dir`` (reused when there, e.g. the demo's; trained when missing).
        num_clips: generated clips to score (the WaveGAN paper uses 50k for IS, 1k for |D|).
        max_train: cap on the real training clips kept for FID statistics and |D|train (seeded subset).
        recipe: kws keys overriding the reference recipe when a scorer is trained (small ones for tests).
        min_confidence: label-consistency filter threshold (``None``/0: off); adds ``acceptance``,
            ``label_acc_filtered`` (+ per label) and ``filter`` to the result.
        filter_classifier: the filter's folder; ``None`` = the generator's own reference classifier.
    Returns ``{"generated": {...}, "real": {...}, "classifier": {...}, "settings": {...}, ...}`` (metrics.json).
    """
    data = Path(data)
    device = _check_args(num_clips, min_confidence, data, device)
    started = time.time()
    source, kind = _source(ckpt)
    labels = _data_keywords(data) if kind == "unconditional" else list(source.label_names)
    filtering = bool(min_confidence) and float(min_confidence) > 0
    if filtering and kind == "unconditional":
        raise ValueError("--min_confidence: an unconditional generator has no intended label to filter by; "
                         "use a conditional or per-keyword generator, or leave the filter off")
    model, clf_config, clf_dir = reference_classifier(data, labels, classifier, device=device,
                                                      sample_rate=sample_rate, progress=progress, overrides=recipe)
    train, test = _real_sets(data, labels, model.label_names, sample_rate, max_train, seed)
    generated, names = _generated_set(source, kind, labels, model.label_names, num_clips, seed, sample_rate,
                                      train.wavs.shape[1], device, metrics)
    ctx = MetricContext(classifier=model, train=train, device=device, sample_rate=sample_rate,
                        self_n=min(num_clips, len(test)), progress=progress, seed=seed)
    result = {
        "ckpt": str(Path(ckpt).resolve()), "data": str(data.resolve()), "kind": kind, "labels": labels,
        "seed": seed, "num_generated": num_clips, "num_real_test": len(test), "num_real_train": len(train),
        "metrics": list(metrics), "generated": run_metrics(ctx, generated, metrics), "real": run_metrics(ctx, test, metrics),
        "classifier": {"folder": str(clf_dir.resolve()), "label_names": list(model.label_names),
                       "test_acc": clf_config.get("test_acc"), "valid_acc": clf_config.get("valid_acc"),
                       "num_train": clf_config.get("num_train")},
    }
    if not_independent(source.configs, clf_dir):
        # aux: frozen with this classifier: its label accuracy and IS measure how well G fooled it
        result["classifier"]["trained_against"] = True
        warnings.warn(f"classifier {clf_dir}: the generator {ckpt} was trained to please it (aux: frozen), so its "
                      f"label accuracy, IS and FID are not independent; give --classifier DIR, a classifier trained "
                      f"another way (e.g. `ganaug kws` with another seed or recipe)", UserWarning, stacklevel=2)
    if filtering:
        result.update(_filter_result(ctx, generated, names, labels, source, clf_dir, filter_classifier,
                                     float(min_confidence), sample_rate, device, progress, data, recipe))
    result["settings"] = {"generator": source.fingerprint(), "data": result["data"], "labels": labels,
                          "num_clips": num_clips, "seed": seed, "metrics": list(metrics), "max_train": max_train,
                          "sample_rate": sample_rate, "classifier": result["classifier"]["folder"],
                          "min_confidence": float(min_confidence) if filtering else None,
                          "filter_classifier": result["filter"]["folder"] if filtering else None}
    result["seconds"] = round(time.time() - started, 1)
    return result


def main(ckpt, data, classifier=None, out=None, num_clips=1000, device=None, seed=0, min_confidence=None,
         filter_classifier=None, noise_folder=None) -> int:
    """``ganaug evaluate``: write ``OUT/metrics.json`` (default ``CKPT/eval``) and print the table."""
    from ganaug.errors import run_command

    def go() -> int:
        from ganaug.env import resolve_device
        from ganaug.kws.reference import noise_overrides

        result = evaluate_generator(ckpt, data, classifier=classifier, num_clips=num_clips,
                                    device=resolve_device(device), seed=seed, min_confidence=min_confidence,
                                    filter_classifier=filter_classifier, recipe=noise_overrides(noise_folder) or None)
        path = write_metrics(Path(out) if out is not None else Path(ckpt) / "eval", result)
        print(format_table(result))
        print(f"\nwrote {path}")
        return 0

    return run_command("ganaug evaluate", go)
