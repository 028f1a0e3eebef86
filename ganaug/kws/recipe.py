"""``ganaug kws HPARAMS.yaml [--key=value ...]``: train a keyword classifier, test it, write results.json.

The output folder gets ``hparams.yaml`` (the resolved config), ``noise.csv`` (when classic
augmentation uses background-noise clips), ``save/`` (SpeechBrain's epoch checkpoints: the best
and the newest; rerunning a killed command resumes from the newest), ``classifier/``
(safetensors + config.json, see :mod:`ganaug.models.classifier`) and ``results.json``::

    {"test_acc": float, "eval_acc": float | null, "num_train": int, "seed": int,
     "valid_acc", "per_label_acc", "eval_per_label_acc", "num_test", "num_eval", "augmentation",
     "synthetic_rows", "history", "config", ...}
"""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path

import torch

from ganaug.config import HparamsError, load_hparams

__all__ = ["main", "run_kws", "check_hparams", "inputs_fingerprint", "RESULTS_FILE"]

RESULTS_FILE = "results.json"
CHOICES = {"trainer": ("speechbrain", "hf"), "train_source": ("real", "synthetic"), "gan_mode": ("replace", "append"),
           "gan_unknown_labels": ("error", "keep"), "model": ("ds_cnn", "bcresnet"), "task": ("keywords", "v2-12"),
           "synthetic_bn": ("shared", "separate"), "gan_select": ("threshold", "top_k")}
SCALARS = (bool, int, float, str, type(None))


def check_hparams(hp: dict) -> None:
    """Clear errors for values the recipe cannot use."""
    for key, allowed in CHOICES.items():
        if hp[key] not in allowed:
            raise HparamsError(f"{key}={hp[key]!r}: choose one of {', '.join(allowed)}")
    if hp["soft_labels"] and not hp["gan_ckpt"]:
        raise HparamsError("soft_labels=True needs --gan_ckpt=DIR: it sets the targets of the synthetic rows")
    for key in ("number_of_epochs", "batch_size", "synthetic_per_label", "gan_pool", "gan_top_k"):
        if not isinstance(hp[key], int) or hp[key] < 1:
            raise HparamsError(f"{key}={hp[key]!r}: must be a positive integer")
    steps = hp["steps_per_epoch"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise HparamsError(f"steps_per_epoch={steps!r}: a positive integer, or null for one pass over the data per epoch")
    for key in ("gan_p", "gan_ratio", "gan_min_confidence"):
        if isinstance(hp[key], bool) or not isinstance(hp[key], (int, float)) or not 0.0 <= float(hp[key]) <= 1.0:
            raise HparamsError(f"{key}={hp[key]!r}: must be a probability in [0, 1]")
    for key in ("synthetic_weight", "domain_adversarial"):
        if isinstance(hp[key], bool) or not isinstance(hp[key], (int, float)) or float(hp[key]) < 0:
            raise HparamsError(f"{key}={hp[key]!r}: a weight >= 0")
    for key in ("warmup_fraction", "label_smoothing"):
        if isinstance(hp[key], bool) or not isinstance(hp[key], (int, float)) or not 0.0 <= float(hp[key]) < 1.0:
            raise HparamsError(f"{key}={hp[key]!r}: must be in [0, 1)")
    if hp["train_source"] == "synthetic" and not hp["gan_ckpt"]:
        raise HparamsError("train_source=synthetic (TSTR) needs --gan_ckpt=DIR, the generator to train on")
    if hp["train_source"] == "synthetic" and hp["task"] == "v2-12":
        raise HparamsError("train_source=synthetic (TSTR) is defined on the keywords alone: use --task=keywords")
    if isinstance(hp["unknown_share"], bool) or not isinstance(hp["unknown_share"], (int, float)) \
            or not 0.0 < float(hp["unknown_share"]) <= 10.0:
        raise HparamsError(f"unknown_share={hp['unknown_share']!r}: the share of _unknown_ clips, e.g. 0.1")
    from ganaug.config import check_device, check_threads

    check_device(hp["device"])
    check_threads(hp["num_threads"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


NOISE_FOLDERS = ("_background_noise_", "_silence_")   # what noise_folder=auto looks for in data_folder, in order


def resolve_noise_folder(hp: dict) -> str:
    """The background-noise folder of classic augmentation: ``noise_folder``, or for ``auto`` the data
    folder's ``_background_noise_/`` (the official archive's long recordings: AddNoise cuts random
    segments), else its ``_silence_/`` (one-second clips), else ``""``: white noise, with one warning."""
    value = str(hp["noise_folder"] or "")
    if value != "auto":
        if value and not Path(value).is_dir():
            raise HparamsError(f"noise_folder={value}: no such folder; give background-noise recordings "
                               f"(Speech Commands' _background_noise_), auto, or --noise_folder='' for white noise")
        return value
    data = Path(str(hp["data_folder"]))
    for name in NOISE_FOLDERS:
        if (data / name).is_dir():
            return str(data / name)
    if hp["classic_augment"]:
        warnings.warn(f"noise_folder=auto: {data} has no {' or '.join(NOISE_FOLDERS)} folder, so classic augmentation "
                      f"adds white noise; give --noise_folder=DIR for recordings of real background noise", UserWarning,
                      stacklevel=2)
    return ""


def _classic_augmenter(hp: dict, output_folder: Path):
    """The classic augmenter of a run whose ``noise_folder`` is resolved (:func:`resolve_noise_folder`)."""
    if not hp["classic_augment"]:
        return None
    from ganaug.kws.data import write_noise_csv

    add_noise = hp["add_noise"]
    if hp["noise_folder"]:
        write_noise_csv(hp["noise_folder"], add_noise.csv_file, int(hp["sample_rate"]))
    else:
        add_noise.csv_file = None  # AddNoise falls back to white noise
    return hp["classic_augmenter"]


def inputs_fingerprint(hp: dict) -> str:
    """The contents of what a run reads besides its data and hparams: the background-noise clips
    (names and sizes), the generator's weights and the filter classifier's weights, so that a
    checkpoint of a run fed other files is not resumed (paths may move; contents may not change)."""
    from ganaug.io import file_sha256

    parts = []
    noise = Path(str(hp["noise_folder"] or ""))     # resolved: a folder, or "" for white noise
    if hp["classic_augment"] and str(hp["noise_folder"] or "") and noise.is_dir():
        parts += [f"{p.relative_to(noise)}:{p.stat().st_size}" for p in sorted(noise.rglob("*")) if p.is_file()]
    ckpt = str(hp["gan_ckpt"] or "")
    if ckpt and Path(ckpt).is_dir():                 # a missing folder is reported by make_injection
        from ganaug.augment.bank import SyntheticBank, is_bank
        from ganaug.augment.source import GeneratorSource
        from ganaug.checkpoint import WEIGHTS_FILE

        if is_bank(ckpt):                            # a bank of ganaug generate: its index files' contents
            parts.append(f"bank:{SyntheticBank(ckpt).content_key()}")
        else:
            parts += [f"{label}:{file_sha256(path / WEIGHTS_FILE)}"
                      for label, (path, _) in GeneratorSource(ckpt).entries.items()]
    filter_dir = Path(str(hp["gan_filter_classifier"] or ""))
    if ckpt and (filter_dir / "classifier.safetensors").is_file():
        parts.append(f"filter:{file_sha256(filter_dir / 'classifier.safetensors')}")
    return "|".join(parts)


def _injection_report(injection) -> dict | None:
    """What judged the run's synthetic clips, per label: the filter's bar, the share of synthetic clips and of
    the real VALID clips that cleared it."""
    if injection is None or not injection.report:
        return None
    report = dict(injection.report)
    acceptance = getattr(injection.augment.source, "acceptance", None)
    if callable(acceptance):                  # threshold: the share of the clips tried that the filter kept
        report["synthetic_acceptance"] = acceptance()
    return report


MODE_KEYS = {"append": "gan_ratio", "replace": "gan_p"}   # the key each gan_mode reads


def warn_unused_policy_key(hp: dict, overrides) -> None:
    """An override of the other gan_mode's key (``--gan_p`` under the default ``append``) would do nothing: say so."""
    mode = hp["gan_mode"]
    other = next(m for m in MODE_KEYS if m != mode)
    key = MODE_KEYS[other]
    if hp["gan_ckpt"] and key in (overrides or {}):
        warnings.warn(f"--{key}={hp[key]} does nothing with gan_mode={mode} (which reads --{MODE_KEYS[mode]}); "
                      f"set --gan_mode={other} to use it", UserWarning, stacklevel=3)


def real_batch_size(hp: dict) -> int:
    """Real rows per training batch: ``batch_size``, or in append mode the share that leaves room for
    ``gan_ratio`` synthetic rows per real row, so the classifier's batches keep their size."""
    if hp["gan_mode"] != "append":
        return int(hp["batch_size"])
    return max(1, round(int(hp["batch_size"]) / (1.0 + float(hp["gan_ratio"]))))


def train_kws(hp: dict, output_folder: Path, progress: bool = True, desc: str = "kws") -> tuple[dict, object]:
    """Train and test one classifier of the checked hparams ``hp``: ``(results, model)``.

    ``output_folder`` receives ``noise.csv`` (classic augmentation with background noise) and the
    epoch checkpoints in ``save/``, which a rerun resumes from. :func:`run_kws` and
    :mod:`ganaug.kws.reference` both call it.
    """
    from ganaug.kws.brain import AugmentPipeline, train_classifier
    from ganaug.kws.data import load_kws_data, tstr_training_set
    from ganaug.kws.injection import make_injection

    started = time.time()
    hp = {**hp, "noise_folder": resolve_noise_folder(hp)}
    _seed_everything(int(hp["seed"]))
    data = load_kws_data(hp)
    num_real = len(data.train[0])
    if hp["train_source"] == "synthetic":  # TSTR: the real training split is replaced by generated clips
        data.train = tstr_training_set(hp["gan_ckpt"], data.label_names, int(hp["synthetic_per_label"]),
                                       int(hp["sample_rate"]), int(hp["num_samples"]), int(hp["seed"]),
                                       str(hp["device"]), min_confidence=float(hp["gan_min_confidence"] or 0) or None,
                                       filter_classifier=hp["gan_filter_classifier"] or None)
    classic = _classic_augmenter(hp, output_folder)
    gan_on = bool(hp["gan_ckpt"]) and hp["train_source"] == "real"
    save = {"checkpoint_dir": output_folder / "save", "signature_extra": inputs_fingerprint(hp),
            "spec_augment": hp["spec_augment"] if hp["classic_augment"] else None}
    _seed_everything(int(hp["seed"]))
    # one injection policy for both trainers: GanAugment on every training batch, then classic augmentation
    injection = make_injection(hp, data) if gan_on else None
    augment = AugmentPipeline(injection, classic)
    save["real_batch_size"] = real_batch_size(hp) if gan_on else int(hp["batch_size"])
    if hp["trainer"] == "speechbrain":
        out = train_classifier(hp, data, augment, progress=progress, desc=desc, **save)
    else:
        from ganaug.kws.hf import train_hf

        out = train_hf(hp, data, augment=augment, progress=progress, **save)
    synthetic_rows = augment.synthetic_rows

    test, evals = out["test"], out.get("eval")
    results = {
        "test_acc": test["acc"],
        "eval_acc": evals["acc"] if evals else None,
        "num_train": len(data.train[0]),
        "seed": int(hp["seed"]),
        "valid_acc": out["valid_acc"],
        "temperature": out["temperature"],
        "best_epoch": out["best_epoch"],
        "per_label_acc": test["per_label_acc"],
        "test_predictions": test["predictions"], "test_targets": test["targets"],
        "eval_per_label_acc": evals["per_label_acc"] if evals else None,
        "num_real_train": num_real if hp["train_source"] == "real" else 0,
        "num_valid": len(data.valid[0]),
        "num_test": test["n"],
        "num_eval": evals["n"] if evals else 0,
        "speaker_fraction": float(hp["speaker_fraction"]),
        "label_names": data.label_names,
        "trainer": hp["trainer"],
        "train_source": hp["train_source"],
        "augmentation": {"classic": bool(hp["classic_augment"]), "gan_ratio": float(hp["gan_ratio"]),
                         "noise": (hp["noise_folder"] or "white noise") if hp["classic_augment"] else None,
                         "gan_ckpt": str(hp["gan_ckpt"] or "") or None,
                         "gan_p": float(hp["gan_p"]), "gan_mode": hp["gan_mode"],
                         "gan_min_confidence": float(hp["gan_min_confidence"] or 0.0)},
        "synthetic_rows": int(synthetic_rows),
        "injection": _injection_report(injection),
        "history": out["history"],
        "duration_s": round(time.time() - started, 2),
        "config": {k: v for k, v in hp.items() if isinstance(v, SCALARS) or
                   (isinstance(v, list) and all(isinstance(x, SCALARS) for x in v))},
        **{k: v for k, v in data.info.items() if k != "train_speaker_ids"},
    }
    return results, out["model"]


def run_kws(hparams_file, overrides=None) -> dict:
    """Run the recipe; returns the results dict (also written to ``<output_folder>/results.json``)."""
    from ganaug.io import atomic_write, atomic_write_json, lock
    from ganaug.models.classifier import save_classifier

    from ganaug.env import resolve_device, torch_threads

    hp, resolved = load_hparams(hparams_file, overrides)
    check_hparams(hp)
    warn_unused_policy_key(hp, overrides)
    hp["device"] = resolve_device(hp["device"])
    output_folder = Path(str(hp["output_folder"]))
    # one run per folder (a second would test the first one's checkpoints in save/), at its num_threads
    with lock(output_folder), torch_threads(hp["num_threads"]):
        atomic_write(output_folder / "hparams.yaml", lambda tmp: Path(tmp).write_text(resolved))
        results, model = train_kws(hp, output_folder, progress=bool(hp["progress"]))
        save_classifier(output_folder / "classifier", model, test_acc=results["test_acc"],
                        data_fingerprint=results.get("train_fingerprint"), temperature=results["temperature"],
                        train_speakers_sha1=results["train_speakers_sha1"])
        atomic_write_json(output_folder / RESULTS_FILE, results)
    return results


def main(hparams_file, overrides=None) -> int:
    """Entry point of ``ganaug kws``: train, test, print the accuracy; a user error is one line, exit 2."""
    from ganaug.errors import run_command

    return run_command("ganaug kws", _main, hparams_file, overrides)


def _main(hparams_file, overrides) -> int:
    results = run_kws(hparams_file, overrides)
    out = Path(str(results["config"]["output_folder"]))
    eval_text = "" if results["eval_acc"] is None else f", eval_acc {results['eval_acc']:.4f}"
    print(f"test_acc {results['test_acc']:.4f}{eval_text} ({results['num_train']} training clips, "
          f"seed {results['seed']}); results in {out / RESULTS_FILE}")
    return 0
