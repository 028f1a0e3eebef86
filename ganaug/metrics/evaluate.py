"""``ganaug evaluate CKPT --data DIR``: score a generator, with real-data reference values.

:func:`evaluate_generator` is the library function (the ablation and the report call it);
:func:`main` is the command: it writes ``metrics.json`` and prints the table.

Protocol: ``num_samples`` clips are generated (labels balanced for a conditional generator or a
per-keyword run folder); the reference classifier (:mod:`ganaug.metrics.classifier`) is
trained on the data's TRAIN split, or loaded. The "real" column scores the held-out TEST
speakers' clips of the same labels in the same way: IS of real test clips, FID real test vs
real train, |D|train of test clips to the training clips, the classifier's test accuracy. Set
sizes differ (generated: ``num_samples``, real: the test split), which biases FID upward for
the smaller set; |D|self is computed on the same number of clips for both columns.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ganaug.checkpoint import find_checkpoints, is_checkpoint, load_generator
from ganaug.io import atomic_write_json
from ganaug.metrics.classifier import real_split, reference_classifier
from ganaug.metrics.registry import DEFAULT_METRICS, ClipSet, MetricContext, run_metrics

__all__ = ["evaluate_generator", "load_generators", "generate_clips", "format_table", "main"]

ROWS = [  # key, name, reading
    ("is", "Inception Score", "higher is better, at most #labels"),
    ("mis", "modified IS", "higher is better"),
    ("fid", "FID vs real train", "lower is better"),
    ("d_train", "|D|train", "NN distance to train; ~0 = copies"),
    ("d_self", "|D|self", "NN distance within set; small = mode collapse"),
    ("label_acc", "label accuracy", "classifier hears the intended label"),
    ("consistency", "spectrogram consistency", "TiFGAN's measure; real speech ~0.7, noise lower"),
]


def load_generators(ckpt, device=None) -> tuple[dict, str]:
    """``({label or None: generator}, kind)``; kind is "conditional", "unconditional" or "per_keyword"."""
    ckpt = Path(ckpt)
    if is_checkpoint(ckpt):
        generator = load_generator(ckpt, device=device)
        return {None: generator}, "unconditional" if generator.label_names is None else "conditional"
    found = find_checkpoints(ckpt)
    if found:
        return {label: load_generator(path, device=device) for label, path in found.items()}, "per_keyword"
    raise FileNotFoundError(f"CKPT {ckpt}: not a checkpoint directory (config.json + generator.safetensors) "
                            f"nor a per-keyword run folder (<label>/ checkpoints); pass the output_folder of `ganaug train`")


def generator_labels(generators: dict, kind: str) -> list[str] | None:
    if kind == "per_keyword":
        return list(generators)
    if kind == "conditional":
        return list(generators[None].label_names)
    return None


def generate_clips(generators: dict, kind: str, n: int, seed: int = 0, sample_rate: int = 16000,
                   num_samples: int = 16384, labels: list[str] | None = None) -> tuple[torch.Tensor, list | None]:
    """``(wavs (n, num_samples) on the CPU at sample_rate, label names or None)``.

    Labels cycle through ``labels`` (default: every label of the generator(s)), so each gets
    ``n / #labels`` clips; an unconditional generator ignores ``labels`` and gives ``None``.
    """
    from ganaug.audio import fit_length, resample

    rng = torch.Generator().manual_seed(seed)
    names = None if kind == "unconditional" else labels or generator_labels(generators, kind)
    wanted = None if names is None else [names[i % len(names)] for i in range(n)]
    if kind == "per_keyword":
        wavs = torch.empty(n, num_samples)
        for name in names:
            rows = [i for i, w in enumerate(wanted) if w == name]
            if rows:
                g = generators[name]
                wavs[rows] = fit_length(resample(g.sample(len(rows), generator=rng).cpu(), g.sample_rate, sample_rate), num_samples)
        return wavs, wanted
    g = generators[None]
    out = g.sample(n, labels=wanted, generator=rng).cpu()
    return fit_length(resample(out, g.sample_rate, sample_rate), num_samples), wanted


def _add_generator_spectrograms(clips, generators: dict, kind: str, labels, seed: int, n: int = 256) -> None:
    """For TiFGAN, score the generator's own log-magnitudes (before PGHI), as the TiFGAN paper does."""
    from ganaug.functional import sample_latents

    if any(g.family != "tifgan" for g in generators.values()):
        return
    rng = torch.Generator().manual_seed(seed + 1)
    logmags = []
    for name, g in generators.items():
        device = next(g.parameters()).device
        count = n if kind != "per_keyword" else max(1, n // len(generators))
        z = sample_latents(count, g.latent_dim, rng).to(device)
        index = None
        if kind == "conditional":
            index = torch.tensor([g.label_names.index(labels[i % len(labels)]) for i in range(count)], device=device)
        with torch.inference_mode():
            logmags.append(g.to_log_magnitude(g(z, index)).float().cpu())
    clips.cache["logmag"] = torch.cat(logmags)


def _data_keywords(data) -> list[str]:
    from ganaug.data import KeywordDataset

    names = [n for n in KeywordDataset(data, num_samples=None).label_names if not n.startswith("_")]
    if not names:
        raise ValueError(f"--data {data}: no keyword labels found (only {KeywordDataset(data).label_names})")
    return names


def evaluate_generator(ckpt, data, classifier=None, num_samples: int = 1000, device=None, seed: int = 0,
                       metrics=DEFAULT_METRICS, max_train: int = 5000, sample_rate: int = 16000,
                       progress: bool = True, recipe: dict | None = None) -> dict:
    """Score the generator(s) in ``ckpt`` against the real clips of ``data``; returns the metrics dict.

    Args:
        ckpt: checkpoint directory (conditional or unconditional) or per-keyword run folder.
        data: real data folder (Speech Commands or FSDD layout); its speaker-disjoint splits are used.
        classifier: reference classifier folder; ``None`` = a per-data cache folder. Trained if missing.
        num_samples: generated clips to score (the WaveGAN paper uses 50k for IS, 1k for |D|).
        max_train: cap on the real training clips kept for FID statistics and |D|train (seeded subset).
        recipe: overrides of the reference classifier's ``REFERENCE_RECIPE`` when one is trained.
    Returns ``{"generated": {...}, "real": {...}, "classifier": {...}, ...}`` (see metrics.json).
    """
    if not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"--num-samples {num_samples!r}: need an integer >= 2 (FID needs a covariance)")
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder; give a Speech Commands- or FSDD-layout folder")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    started = time.time()
    generators, kind = load_generators(ckpt, device=device)
    labels = generator_labels(generators, kind) or _data_keywords(data)
    model, clf_config, clf_dir = reference_classifier(data, labels, classifier, device=device,
                                                      sample_rate=sample_rate, progress=progress, **(recipe or {}))
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

    gen_wavs, gen_names = generate_clips(generators, kind, num_samples, seed, sample_rate, train_wavs.shape[1], labels)
    gen_labels = None if gen_names is None else torch.tensor([to_index[n] for n in gen_names], dtype=torch.long)
    ctx = MetricContext(classifier=model, train=ClipSet("real train", train_wavs.float(), train_labels),
                        device=device, sample_rate=sample_rate,
                        self_n=min(num_samples, test_wavs.shape[0]), progress=progress)
    generated_set = ClipSet("generated", gen_wavs, gen_labels)
    if "consistency" in metrics:
        _add_generator_spectrograms(generated_set, generators, kind, labels, seed)
    generated = run_metrics(ctx, generated_set, metrics)
    real_ref = run_metrics(ctx, ClipSet("real test", test_wavs.float(), test_labels), metrics)
    return {
        "ckpt": str(Path(ckpt).resolve()), "data": str(data.resolve()), "kind": kind, "labels": labels,
        "seed": seed, "num_generated": num_samples, "num_real_test": int(test_wavs.shape[0]),
        "num_real_train": int(train_wavs.shape[0]), "metrics": list(metrics),
        "generated": generated, "real": real_ref,
        "classifier": {"folder": str(clf_dir.resolve()), "label_names": list(model.label_names),
                       "test_acc": clf_config.get("test_acc"), "valid_acc": clf_config.get("valid_acc"),
                       "num_train": clf_config.get("num_train")},
        "seconds": round(time.time() - started, 1),
    }


def _fmt(values: dict, key: str) -> str:
    value = values.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    std = values.get(f"{key}_std")
    return f"{value:.3f} ± {std:.3f}" if std is not None else f"{value:.3f}"


def format_table(result: dict) -> str:
    """Markdown table: metric | generated | real (test speakers) | how to read it."""
    lines = ["| metric | generated | real (test speakers) | reading |", "|---|---|---|---|"]
    for key, name, reading in ROWS:
        if key in result["generated"] or key in result["real"]:
            lines.append(f"| {name} | {_fmt(result['generated'], key)} | {_fmt(result['real'], key)} | {reading} |")
    per_label = result["generated"].get("label_acc_per_label")
    if per_label:
        lines.append("")
        lines.append("label accuracy per label: " + ", ".join(f"{k} {v:.2f}" for k, v in per_label.items()))
    clf = result["classifier"]
    lines.append("")
    lines.append(f"reference classifier: {clf['folder']} (labels {clf['label_names']}, "
                 f"test accuracy {clf['test_acc'] if clf['test_acc'] is None else round(clf['test_acc'], 4)})")
    lines.append(f"{result['num_generated']} generated clips, {result['num_real_test']} real test clips, "
                 f"{result['num_real_train']} real train clips")
    return "\n".join(lines)


def main(ckpt, data, classifier=None, out=None, num_clips=1000, device=None, seed=0) -> int:
    """``ganaug evaluate``: write ``OUT/metrics.json`` (default ``CKPT/eval``) and print the table."""
    result = evaluate_generator(ckpt, data, classifier=classifier, num_samples=num_clips, device=device, seed=seed)
    out = Path(out) if out is not None else Path(ckpt) / "eval"
    atomic_write_json(out / "metrics.json", result)
    (out / "metrics.md").parent.mkdir(parents=True, exist_ok=True)
    table = format_table(result)
    (out / "metrics.md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {out / 'metrics.json'}")
    return 0
