"""Build a blind listening test: real clips of held-out speakers and generated clips, anonymised.

``build_test(ckpts, data, out)`` writes into ``out``::

    index.html, listen.js, listen.css   the page (copied from the package; no network needed)
    test.json                            what the page may know: labels, choices, clip ids, block ids
    clips/<id>.wav                       16-bit PCM WAV, peak-normalised, named by a random id
    key.json                             id -> (system, label), block -> system: never served
    answers/                             one ``<listener>.jsonl`` per listener (written by the server)

Systems are ``real`` (the TEST split of ``data``: speakers no generator saw), one per checkpoint
(named by its folder) and, with ``min_confidence``, ``<name>+filtered`` (the same generator behind
the label filter). Each system's clips are cut into blocks of ten (one diversity rating per block,
as in the WaveGAN paper); ids and block ids are random tokens, so nothing the browser sees names a
system.
"""

from __future__ import annotations

import random
import re
import secrets
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ganaug.io import atomic_write, atomic_write_json

__all__ = ["ListenError", "build_test", "filtered_source", "CANT_TELL", "BLOCK_SIZE", "KEY_FILE", "TEST_FILE",
           "ANSWERS_DIR", "PAGE_FILES", "FORMAT_VERSION"]

FORMAT_VERSION = 1
CANT_TELL = "can't tell"
BLOCK_SIZE = 10  # clips per diversity rating
REAL = "real"
KEY_FILE, TEST_FILE, ANSWERS_DIR, CLIPS_DIR = "key.json", "test.json", "answers", "clips"
PAGE_FILES = {"index.html": "listen.html", "listen.js": "listen.js", "listen.css": "listen.css"}
PEAK = 0.9  # every clip is scaled to this peak, so loudness tells nothing about where a clip came from


class ListenError(ValueError):
    """Bad input to a listening-test command; the message names the argument or file and the fix."""


def filtered_source(ckpt, min_confidence: float, filter_classifier=None, data_folder=None, device=None,
                    noise_folder=None):
    """The generator source of ``ckpt`` that keeps only clips its label filter accepts.

    The one place where the listening test meets ganaug.augment's label filter; the default
    filter (the reference classifier of the generator's TRAIN split) is trained here when missing
    (on ``data_folder`` when the folder of the generator's config.json is not here).
    """
    from ganaug.augment.source import GeneratorSource, with_filter

    source = GeneratorSource(ckpt)
    if filter_classifier is None:
        from ganaug.kws.generate import filter_for_config
        from ganaug.kws.reference import noise_overrides

        filter_classifier = filter_for_config(next(iter(source.configs.values())), device=device,
                                              data_folder=data_folder, overrides=noise_overrides(noise_folder))
    return with_filter(source, min_confidence, filter_classifier)


def _system_names(ckpts: list[Path]) -> list[str]:
    names = []
    for path in ckpts:
        base = re.sub(r"[^A-Za-z0-9_.+-]+", "-", path.resolve().name) or "generator"
        name, k = base, 2
        while name in names or name == REAL:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _real_clips(dataset, labels, per_label, rng: random.Random):
    """``per_label`` seeded clips of each label from ``dataset`` -> [(label, wav, {"path": file})]."""
    by_label: dict[str, list[int]] = {}
    for i, clip in enumerate(dataset.clips):
        by_label.setdefault(clip.label_name, []).append(i)
    chosen = []
    for label in labels:
        pool = by_label.get(label, [])
        if len(pool) < per_label:
            raise ListenError(f"--data {dataset.root}: its test split has {len(pool)} clips of {label!r}, fewer than "
                              f"--per-label {per_label}; lower --per-label or use a larger data folder")
        chosen += [(label, dataset.load(i), {"path": dataset.clips[i].path}) for i in rng.sample(pool, per_label)]
    return chosen


def _write_clip(wav: torch.Tensor, path: Path, sample_rate: int) -> None:
    clip = wav.detach().float().cpu().numpy()
    peak = float(np.abs(clip).max()) if clip.size else 0.0
    if peak > 0:
        clip = clip * (PEAK / peak)
    atomic_write(path, lambda tmp: sf.write(tmp, clip, sample_rate, format="WAV", subtype="PCM_16"))


def _check_args(ckpts, data, out: Path, per_label, min_confidence, filtered) -> list[Path]:
    ckpts = [Path(c) for c in ([ckpts] if isinstance(ckpts, (str, Path)) else ckpts)]
    if not ckpts:
        raise ListenError("give at least one generator checkpoint directory (ganaug listen CKPT --data DIR --out DIR)")
    if not isinstance(per_label, int) or per_label < 1:
        raise ListenError(f"--per-label {per_label!r}: give a positive number of clips per label")
    if data is None or not Path(data).is_dir():
        raise ListenError(f"--data {data}: no such folder; give the Speech Commands- or FSDD-layout folder the "
                          f"generators were trained on (its test split gives the real clips)")
    answers = out / ANSWERS_DIR
    if answers.is_dir() and any(answers.iterdir()):
        raise ListenError(f"--out {out}: holds answers of an earlier test ({answers}); choose another --out, "
                          f"or move that test away first")
    for path in ckpts:
        if not path.is_dir():
            raise ListenError(f"{path}: no such checkpoint directory; give folders written by `ganaug train`")
    if min_confidence:
        filtered(ckpts[0])  # fail before any work when unavailable
    return ckpts


def _generated(ckpts, sources, names, seed, min_confidence, filter_classifier, progress, systems, clips,
               filtered, device=None) -> None:
    """Add to ``systems`` and ``clips`` each generator (and, with ``min_confidence``, it behind its filter:
    ``filtered(ckpt)``), made on ``device``."""
    from ganaug.augment.source import mix_seed, synthesize

    for name, ckpt, source in zip(_system_names(ckpts), ckpts, sources):
        variants = [(name, source, {"kind": "generator"})]
        if min_confidence:
            variants.append((f"{name}+filtered", filtered(ckpt),
                             {"kind": "filtered", "min_confidence": float(min_confidence),
                              "filter_classifier": None if filter_classifier is None else str(filter_classifier)}))
        for system, src, info in variants:
            if progress:
                print(f"generating {len(names)} clips of {system}", flush=True)
            system_seed = mix_seed("listen", info["kind"], seed)
            wavs, kept, _ = synthesize(src, names, seed=system_seed, device=device)   # a filtered system drops rejected rows
            systems[system] = {**info, "ckpt": str(ckpt.resolve())}
            clips[system] = [(label, wavs[j], {"seed": system_seed, "index": j}) for j, label in enumerate(kept)]


def _write_blocks(clips: dict, out: Path, rng: random.Random, sample_rate: int):
    """Each system's clips, shuffled, in blocks under random ids: ``(key items, key blocks, test items)``."""
    shutil.rmtree(out / CLIPS_DIR, ignore_errors=True)
    (out / CLIPS_DIR).mkdir(parents=True)
    key_items, key_blocks, items, used = {}, {}, [], set()

    def token(prefix: str) -> str:
        while (t := prefix + secrets.token_hex(5)) in used:
            pass
        used.add(t)
        return t

    for system, entries in clips.items():
        order = list(range(len(entries)))
        rng.shuffle(order)
        for start in range(0, len(order), BLOCK_SIZE):
            block = token("b")
            key_blocks[block] = system
            for j in order[start:start + BLOCK_SIZE]:
                label, wav, source = entries[j]
                cid = token("c")
                _write_clip(wav, out / CLIPS_DIR / f"{cid}.wav", sample_rate)
                key_items[cid] = {"system": system, "label": label, **source}
                items.append({"id": cid, "file": f"{CLIPS_DIR}/{cid}.wav", "block": block})
    items.sort(key=lambda item: item["id"])  # random ids: the file order says nothing either
    return key_items, key_blocks, items


def build_test(ckpts, data, out, per_label: int = 5, seed: int = 0, min_confidence: float | None = None,
               filter_classifier=None, progress: bool = True, device=None, noise_folder=None) -> Path:
    """Write a blind listening test into ``out`` (see the module docstring); returns ``out/test.json``.

    Args:
        ckpts: generator checkpoint directories (conditional) or per-keyword run folders.
        data: real data folder; its TEST split (held-out speakers) gives the real clips.
        per_label: clips per label and system.
        seed: seeds the choice of real clips, the latents and the blocks.
        min_confidence: also test each generator behind its label filter (None or 0: raw clips only).
        filter_classifier: the filter's classifier folder (default: the generator's reference classifier).
        device: where clips are generated and a missing filter classifier is trained (None: CPU).
        noise_folder: background noise of a filter classifier trained here (None: the recipe's ``auto``).
    """
    import functools

    from ganaug.augment.source import GeneratorSource
    from ganaug.data import KeywordDataset

    out = Path(out)
    filtered = functools.partial(filtered_source, min_confidence=min_confidence, filter_classifier=filter_classifier,
                                 data_folder=data, device=device, noise_folder=noise_folder)
    ckpts = _check_args(ckpts, data, out, per_label, min_confidence, filtered)
    sources = [GeneratorSource(c) for c in ckpts]
    labels = [name for name in sources[0].label_names if all(name in s.label_names for s in sources[1:])]
    if not labels:
        raise ListenError(f"{ckpts}: the generators share no label; compare generators of the same keywords")
    sample_rate, num_samples = sources[0].sample_rate, sources[0].num_samples
    dataset = KeywordDataset(data, labels=labels, sample_rate=sample_rate, num_samples=num_samples, split="test")
    rng = random.Random(seed)
    systems = {REAL: {"kind": "real", "data": str(Path(data).resolve())}}
    clips = {REAL: _real_clips(dataset, labels, per_label, rng)}
    names = [label for label in labels for _ in range(per_label)]
    _generated(ckpts, sources, names, seed, min_confidence, filter_classifier, progress, systems, clips, filtered,
               device)
    key_items, key_blocks, items = _write_blocks(clips, out, rng, sample_rate)
    (out / ANSWERS_DIR).mkdir(exist_ok=True)
    test_token = secrets.token_hex(8)
    atomic_write_json(out / KEY_FILE, {
        "format_version": FORMAT_VERSION, "token": test_token, "seed": seed, "per_label": per_label, "labels": labels,
        "sample_rate": sample_rate, "systems": systems, "items": key_items, "blocks": key_blocks})
    atomic_write_json(out / TEST_FILE, {
        "format_version": FORMAT_VERSION, "token": test_token, "labels": labels, "choices": labels + [CANT_TELL],
        "block_size": BLOCK_SIZE, "items": items, "blocks": sorted(key_blocks)})
    for target, name in PAGE_FILES.items():
        text = resources.files("ganaug.listen").joinpath(name).read_text()
        atomic_write(out / target, lambda tmp, text=text: Path(tmp).write_text(text))
    return out / TEST_FILE
