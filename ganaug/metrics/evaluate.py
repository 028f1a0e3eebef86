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

import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import torch

from ganaug.augment.filter import not_independent
from ganaug.io import atomic_write, atomic_write_json
from ganaug.metrics.classifier import load_reference, real_split, reference_classifier
from ganaug.metrics.registry import DEFAULT_METRICS, ClipSet, MetricContext, run_metrics

__all__ = ["evaluate_generator", "format_table",
           "write_metrics", "main"]

ROWS = [  # key, name, reading
    ("is", "Inception Score", "higher is better, at most #labels"),
    ("mis", "modified IS", "higher is better"),
    ("fid", "FID vs real train", "lower is better"),
    ("d_train", "|D|train", "NN distance to train; ~0 = copies"),
    ("d_self", "|D|self", "NN distance within set; small = mode collapse"),
    ("label_acc", "label accuracy", "classifier hears the intended label"),
    ("consistency", "spectrogram consistency", "TiFGAN's measure; real speech ~0.7, noise lower"),
]
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


def _filtered(accepted: torch.Tensor, correct: torch.Tensor, names: list[str], labels: list[str]) -> dict:
    """acceptance and label accuracy of the accepted clips, overall and per label."""
    out = {"acceptance": {}, "label_acc_filtered_per_label": {}}
    for label in labels:
        rows = torch.tensor([n == label for n in names])
        kept = accepted & rows
        out["acceptance"][label] = float(kept.sum() / rows.sum()) if rows.any() else None
        out["label_acc_filtered_per_label"][label] = float(correct[kept].double().mean()) if kept.any() else None
    out["acceptance_overall"] = float(accepted.double().mean())
    out["label_acc_filtered"] = float(correct[accepted].double().mean()) if accepted.any() else None
    out["num_accepted"] = int(accepted.sum())
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
    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 2:
        raise ValueError(f"--num-clips {num_clips!r}: need an integer >= 2 (FID needs a covariance)")
    if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"--min_confidence {min_confidence!r}: give a posterior threshold in [0, 1], e.g. 0.8")
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder; give a Speech Commands- or FSDD-layout folder")
    if str(device or "").startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here; use --device cpu")
    from ganaug.env import resolve_device

    device = torch.device(resolve_device(device, say=False))
    started = time.time()
    source, kind = _source(ckpt)
    labels = _data_keywords(data) if kind == "unconditional" else list(source.label_names)
    filtering = bool(min_confidence) and float(min_confidence) > 0
    if filtering and kind == "unconditional":
        raise ValueError("--min_confidence: an unconditional generator has no intended label to filter by; "
                         "use a conditional or per-keyword generator, or leave the filter off")
    model, clf_config, clf_dir = reference_classifier(data, labels, classifier, device=device,
                                                      sample_rate=sample_rate, progress=progress, overrides=recipe)
    to_index = {name: i for i, name in enumerate(model.label_names)}

    def real(split):
        wavs, idx, _ = real_split(data, labels, split, sample_rate)
        # dataset indices follow `labels`; the classifier may know more labels in another order
        return wavs, torch.tensor([to_index[labels[i]] for i in idx.tolist()], dtype=torch.long)

    train_wavs, train_labels = real("train")
    if train_wavs.shape[0] > max_train:
        keep = torch.randperm(train_wavs.shape[0], generator=torch.Generator().manual_seed(seed))[:max_train].sort().values
        train_wavs, train_labels = train_wavs[keep], train_labels[keep]
    test_wavs, test_labels = real("test")
    if test_wavs.shape[0] < 2:
        raise ValueError(f"--data {data}: the TEST split has {test_wavs.shape[0]} clips of {labels}; "
                         f"the real-data reference needs a few held-out speakers (use a folder with more speakers)")

    names = [UNCONDITIONAL] * num_clips if kind == "unconditional" else [labels[i % len(labels)] for i in range(num_clips)]
    gen_wavs = _generate(source, names, seed, sample_rate, train_wavs.shape[1], device)
    gen_labels = None if kind == "unconditional" else torch.tensor([to_index[n] for n in names], dtype=torch.long)
    ctx = MetricContext(classifier=model, train=ClipSet("real train", train_wavs.float(), train_labels),
                        device=device, sample_rate=sample_rate,
                        self_n=min(num_clips, test_wavs.shape[0]), progress=progress)
    generated_set = ClipSet("generated", gen_wavs, gen_labels)
    if "consistency" in metrics:
        logmag = _generator_spectrograms(source, kind, labels, seed)
        if logmag is not None:
            generated_set.cache["logmag"] = logmag
    generated = run_metrics(ctx, generated_set, metrics)
    real_ref = run_metrics(ctx, ClipSet("real test", test_wavs.float(), test_labels), metrics)
    result = {
        "ckpt": str(Path(ckpt).resolve()), "data": str(data.resolve()), "kind": kind, "labels": labels,
        "seed": seed, "num_generated": num_clips, "num_real_test": int(test_wavs.shape[0]),
        "num_real_train": int(train_wavs.shape[0]), "metrics": list(metrics),
        "generated": generated, "real": real_ref,
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
        label_filter = _label_filter(source, filter_classifier, labels, sample_rate, float(min_confidence), device,
                                     progress, data, recipe)
        accepted = label_filter.accept(gen_wavs, names, sample_rate)
        correct = ctx.probs(generated_set).argmax(1) == gen_labels
        result.update(_filtered(accepted, correct, names, labels))
        result["filter"] = {"folder": str(label_filter.path.resolve()), "min_confidence": float(min_confidence),
                            "label_names": label_filter.label_names}
        if not_independent(source.configs, label_filter.path):
            result["filter"]["trained_against"] = True      # the generator was trained to please the filter
        if result["filter"]["folder"] == result["classifier"]["folder"]:
            # --data is the generator's own training data: one classifier scores and filters, so every kept
            # clip is scored right. Say so where the number is, so nobody reports it as a result.
            result["filter"]["same_as_scorer"] = True
    result["settings"] = {"generator": source.fingerprint(), "data": result["data"], "labels": labels,
                          "num_clips": num_clips, "seed": seed, "metrics": list(metrics), "max_train": max_train,
                          "sample_rate": sample_rate, "classifier": result["classifier"]["folder"],
                          "min_confidence": float(min_confidence) if filtering else None,
                          "filter_classifier": result["filter"]["folder"] if filtering else None}
    result["seconds"] = round(time.time() - started, 1)
    return result


def _md(text: str) -> str:
    """A Markdown table cell: ``|`` escaped so that ``|D|train`` stays one cell."""
    return str(text).replace("|", "\\|")


def _fmt(values: dict, key: str) -> str:
    value = values.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    std = values.get(f"{key}_std")
    return f"{value:.3f} ± {std:.3f}" if std is not None else f"{value:.3f}"


def format_table(result: dict) -> str:
    """Markdown: a table metric | generated | real (test speakers) | how to read it, then notes."""
    lines = ["| metric | generated | real (test speakers) | reading |", "|---|---|---|---|"]
    if result["classifier"].get("trained_against"):
        lines = ["**Not independent:** the generator was trained to please this classifier (`aux: frozen`); "
                 "its label accuracy, IS and FID say how well it fooled it.", "", *lines]
    for key, name, reading in ROWS:
        if key in result["generated"] or key in result["real"]:
            lines.append(f"| {_md(name)} | {_md(_fmt(result['generated'], key))} | {_md(_fmt(result['real'], key))} "
                         f"| {_md(reading)} |")
    if "filter" in result:
        value = result["label_acc_filtered"]
        reading = ("not independent: the filter IS the scorer, it keeps what the scorer hears right "
                   "(give --data of other speakers, or --classifier)"
                   if result["filter"].get("same_as_scorer") else "the scorer on the clips the filter kept")
        if result["filter"].get("trained_against"):
            reading += "; the generator was trained to please the filter (aux: frozen), so its acceptance is no evidence"
        lines.append(f"| label accuracy, filtered | {'-' if value is None else f'{value:.3f}'} | - | {_md(reading)} |")
    per_label = result["generated"].get("label_acc_per_label")
    if per_label:
        lines.append("")
        lines.append("label accuracy per label: " + ", ".join(f"{k} {v:.2f}" for k, v in per_label.items()))
    if "filter" in result:
        f = result["filter"]
        lines.append("")
        lines.append(f"filter (posterior >= {f['min_confidence']}, {f['folder']}): kept {result['num_accepted']} of "
                     f"{result['num_generated']} clips ({result['acceptance_overall']:.2f}); acceptance per label: "
                     + ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in result["acceptance"].items()))
    clf = result["classifier"]
    lines.append("")
    lines.append(f"reference classifier: {clf['folder']} (labels {clf['label_names']}, "
                 f"test accuracy {clf['test_acc'] if clf['test_acc'] is None else round(clf['test_acc'], 4)})")
    lines.append("")
    lines.append(f"{result['num_generated']} generated clips, {result['num_real_test']} real test clips, "
                 f"{result['num_real_train']} real train clips")
    return "\n".join(lines)


def _settings_key(result: dict) -> str:
    """Short id of the settings a metrics.json was computed with (older files: from their fields)."""
    settings = result.get("settings") or {k: result.get(k) for k in ("ckpt", "data", "labels", "num_generated",
                                                                         "seed", "metrics", "classifier")}
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]


def write_metrics(out, result: dict) -> Path:
    """Write ``OUT/metrics.json`` and ``OUT/metrics.md``. A metrics.json there that was computed with
    other settings is kept, as ``metrics-<settings id>.json`` (+ ``.md``), before it is replaced."""
    out = Path(out)
    path = out / "metrics.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        key = _settings_key(old) if isinstance(old, dict) else hashlib.sha1(path.read_bytes()).hexdigest()[:10]
        if key != _settings_key(result):
            kept = out / f"metrics-{key}.json"
            if not kept.exists():
                atomic_write(kept, lambda tmp: Path(tmp).write_bytes(path.read_bytes()))
                if (out / "metrics.md").is_file():
                    md = (out / "metrics.md").read_bytes()
                    atomic_write(out / f"metrics-{key}.md", lambda tmp: Path(tmp).write_bytes(md))
            print(f"{path} held metrics of other settings: kept as {kept}")
    atomic_write_json(path, result)
    table = format_table(result)
    atomic_write(out / "metrics.md", lambda tmp: Path(tmp).write_text(table + "\n"))
    return path


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
