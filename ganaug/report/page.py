"""A static HTML page to listen to a generator and look at it.

``build_report(ckpt, out)`` writes ``out/index.html`` with, per label, audio players and
spectrograms of generated clips next to real ones (when ``data`` is given), the metrics table of
``ganaug evaluate`` (when a ``metrics.json`` is found or given) and the ablation plot (when a
PNG is found or given). Everything the page shows is copied under ``out`` (``audio/``,
``img/``), so the folder can be zipped or served as it is. Spectrograms come from the one renderer,
:mod:`ganaug.plot`, on one dB scale, so clips compare by eye. Each metric gets a plain-language
verdict (:mod:`ganaug.report.verdict`); the ablation table is rendered as HTML from its
``summary.json``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganaug.io import atomic_write
from ganaug.metrics.table import ROWS, format_value
from ganaug.plot import spectrogram_png
from ganaug.report.verdict import label_verdicts, verdicts

__all__ = ["build_report", "main", "find_metrics", "find_ablation"]

UNCONDITIONAL = "all"  # section name of an unconditional generator's clips


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name) or "label"


def find_metrics(ckpt: Path, out: Path) -> Path | None:
    """``out/metrics.json``, ``CKPT/eval/metrics.json`` or ``CKPT/metrics.json``, the first that exists."""
    for path in (out / "metrics.json", ckpt / "eval" / "metrics.json", ckpt / "metrics.json"):
        if path.is_file():
            return path
    return None


def find_ablation(ckpt: Path) -> Path | None:
    """The newest PNG in an ``ablation*`` folder beside or inside the checkpoint folder."""
    found = [p for base in (ckpt, ckpt.parent) for folder in base.glob("ablation*") if folder.is_dir()
             for p in folder.rglob("*.png")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _real_clips(data, label, n, seed, sample_rate, num_samples) -> list[tuple[torch.Tensor, str]]:
    from ganaug.data import KeywordDataset

    dataset = KeywordDataset(data, labels=None if label is None else [label], sample_rate=sample_rate,
                             num_samples=num_samples, split="train")
    if label is None:
        keep = [i for i, c in enumerate(dataset.clips) if not c.label_name.startswith("_")]
    else:
        keep = list(range(len(dataset)))
    order = torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    return [(dataset.load(keep[i]), dataset.clips[keep[i]].label_name) for i in order]


def _metrics_html(metrics_path: Path | None, ckpt: Path) -> str:
    if metrics_path is None:
        return (f"<p class=note>No metrics.json found: run <code>ganaug evaluate {html.escape(str(ckpt))} --data DIR"
                f"</code>, then build this page again.</p>")
    result = json.loads(metrics_path.read_text())
    gen, real = result.get("generated", {}), result.get("real", {})
    said = verdicts(result)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td class=num>{format_value(gen, key)}</td><td class=num>{format_value(real, key)}</td>"
        f"<td>{html.escape(reading)}</td><td class=verdict>{html.escape(said.get(key, '-'))}</td></tr>"
        for key, name, reading in ROWS if key in gen or key in real)
    clf = result.get("classifier", {})
    acc = clf.get("test_acc") if isinstance(clf, dict) else None
    clf_text = (f"Reference classifier test accuracy: {'-' if acc is None else f'{acc:.3f}'}" if isinstance(clf, dict)
                else f"Classifier: {html.escape(str(clf))}")   # metrics.json of older versions: a description
    note = (f"{result.get('num_generated', '?')} generated clips; real column: {result.get('num_real_test', '?')} clips "
            f"of held-out test speakers. {clf_text}. From {html.escape(str(metrics_path))}.")
    per_label = gen.get("label_acc_per_label") or {}
    extra = ("<p class=note>label accuracy per label: " + ", ".join(
        f"{html.escape(k)} {v:.2f}" for k, v in per_label.items()) + "</p>") if per_label else ""
    extra += "".join(f"<p class=verdict>Labels {html.escape(text)}.</p>" for text in label_verdicts(result))
    return (f"<table><tr><th>metric</th><th>generated</th><th>real (test speakers)</th><th>reading</th>"
            f"<th>verdict</th></tr>{rows}</table>{extra}<p class=note>{note}</p>")


def _ablation_table_html(plot: Path) -> str:
    """The ablation's results table as HTML, from the ``summary.json`` beside its plot ("" if none)."""
    from ganaug.ablation.stats import html_table

    path = plot.parent / "summary.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return ""
    summary, order = (saved.get("summary"), saved.get("order")) if isinstance(saved, dict) else (saved, None)
    if not isinstance(summary, list) or not summary:
        return ""
    used = saved.get("generators") or {} if isinstance(saved, dict) else {}
    arms = "".join(f"<li>{html.escape(arm)}: {html.escape(text)}</li>" for arm, text in used.items())
    return html_table(summary, order) + (f"<p class=note>Generators used:</p><ul class=note>{arms}</ul>" if arms else "")


def _check_args(per_label, data, metrics, ablation) -> None:
    if not isinstance(per_label, int) or per_label < 1:
        raise ValueError(f"--per-label {per_label!r}: give a positive number of clips per label")
    if data is not None and not Path(data).is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder; give a Speech Commands- or FSDD-layout folder, or leave it out")
    for name, path in (("metrics", metrics), ("ablation", ablation)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{name} {path}: no such file")


def _cards(out: Path, slug: str, kind: str, clips, sample_rate: int) -> str:
    """Each ``(wav, label)`` of ``clips`` as ``audio/<slug>/<kind>_<j>.wav`` + its spectrogram: the figures."""
    import soundfile as sf

    cards = []
    for j, (wav, label) in enumerate(clips):
        audio, img, caption = f"audio/{slug}/{kind}_{j}.wav", f"img/{slug}/{kind}_{j}.png", f"{kind} {label} #{j}"
        (out / audio).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / audio, wav.clamp(-1, 1).numpy(), sample_rate, subtype="PCM_16")
        spectrogram_png(wav, out / img, sample_rate, caption)
        cards.append(f'<figure><img src="{html.escape(img)}" alt="spectrogram: {html.escape(caption)}">'
                     f'<audio controls preload="metadata" src="{html.escape(audio)}"></audio>'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "".join(cards)


def _sections_html(source, sections, out: Path, data, per_label: int, seed: int, progress: bool) -> str:
    """Per label: ``per_label`` generated clips (and as many real TRAIN clips of ``data``), written under ``out``."""
    from ganaug.augment.source import synthesize

    for sub in ("audio", "img"):
        shutil.rmtree(out / sub, ignore_errors=True)
    rate = source.sample_rate
    wavs, names, _ = synthesize(source, [label for label in sections for _ in range(per_label)], seed=seed,
                                device="cpu")
    body = []
    for si, label in enumerate(tqdm(sections, desc="report", unit="label", disable=not progress)):
        title = UNCONDITIONAL if label is None else label
        slug = _slug(title)
        generated = [(wavs[i], title) for i in range(wavs.shape[0]) if names[i] == label]
        body.append(f'<section id="{slug}"><h2>{html.escape(title)}</h2><h3>generated</h3>'
                    f'<div class=row>{_cards(out, slug, "generated", generated, rate)}</div>')
        if data is not None:
            real = _real_clips(data, label, per_label, seed + si, rate, source.num_samples)
            body.append(f"<h3>real (training data)</h3><div class=row>{_cards(out, slug, 'real', real, rate)}</div>")
        body.append("</section>")
    return "".join(body)


def _ablation_html(ablation: Path | None, out: Path) -> str:
    if ablation is None:
        return "<p class=note>No ablation plot found (pass --ablation PNG).</p>"
    shutil.copyfile(ablation, out / "ablation.png")
    return ('<div class=ablation><img src="ablation.png" alt="ablation plot"></div>' + _ablation_table_html(ablation)
            + f"<p class=note>From {html.escape(str(ablation))}.</p>")


def _page(ckpt: Path, source, sections, seed: int, metrics_block: str, body: str, ablation_block: str) -> str:
    cfg = next(iter(source.configs.values()))
    labels = ", ".join(source.label_names) if source.label_names else "none (unconditional)"
    step = f"training step {cfg['step']} · " if "step" in cfg else ""
    meta = (f"{source.kind.replace('_', '-')} generator · labels: {html.escape(labels)} · {source.sample_rate} Hz · "
            f"{source.num_samples} samples · {step}checkpoint {html.escape(str(ckpt.resolve()))} · seed {seed} · "
            f"built {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}")
    nav = " ".join(f'<a href="#{_slug(t)}">{html.escape(t)}</a>' for t in (s or UNCONDITIONAL for s in sections))
    css = resources.files("ganaug.report").joinpath("style.css").read_text()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ganaug report: {html.escape(ckpt.name)}</title>
<style>{css}</style></head><body>
<h1>ganaug report: {html.escape(ckpt.name)}</h1>
<p class=meta>{meta}</p>
<nav>{nav} <a href="#metrics">metrics</a> <a href="#ablation">ablation</a></nav>
<h2 id="metrics">Metrics</h2>{metrics_block}
{body}
<h2 id="ablation">Ablation</h2>{ablation_block}
</body></html>
"""


def build_report(ckpt, out, data=None, per_label: int = 4, seed: int = 0, metrics=None, ablation=None,
                 progress: bool = True) -> Path:
    """Write ``out/index.html`` (+ ``audio/``, ``img/``) for the generator(s) in ``ckpt``; returns its path.

    Args:
        ckpt: checkpoint directory or per-keyword run folder.
        out: output folder (created; files of an earlier report there are replaced).
        data: real data folder; ``per_label`` real TRAIN clips per label are shown beside the generated ones.
        per_label: clips per label (generated, and real).
        metrics: a ``metrics.json`` of ``ganaug evaluate``; default: found by :func:`find_metrics`.
        ablation: an ablation PNG; default: found by :func:`find_ablation`.
    """
    from ganaug.augment.source import GeneratorSource

    ckpt, out = Path(ckpt), Path(out)
    _check_args(per_label, data, metrics, ablation)
    source = GeneratorSource(ckpt, unconditional=True)
    sections = list(source.label_names) if source.kind != "unconditional" else [None]
    out.mkdir(parents=True, exist_ok=True)
    body = _sections_html(source, sections, out, data, per_label, seed, progress)
    metrics_block = _metrics_html(Path(metrics) if metrics is not None else find_metrics(ckpt, out), ckpt)
    ablation_block = _ablation_html(Path(ablation) if ablation is not None else find_ablation(ckpt), out)
    page = _page(ckpt, source, sections, seed, metrics_block, body, ablation_block)
    index = out / "index.html"
    atomic_write(index, lambda tmp: Path(tmp).write_text(page))
    return index


def main(ckpt, out, data=None, per_label=4, seed=0, metrics=None, ablation=None) -> int:
    """``ganaug report``: write the page and print where it is (user errors are printed by :mod:`ganaug.cli`)."""
    index = build_report(ckpt, out, data=data, per_label=per_label, seed=seed, metrics=metrics, ablation=ablation)
    print(f"wrote {index} (open it in a browser: file://{index.resolve()})")
    return 0
