"""The generators of an ablation grid: given checkpoints, or trained here on a cell's own training speakers.

A generator the grid trains is keyed by (speaker fraction, kind, family, option, data seed, generator seed):
it sees exactly the speakers of the classifier cells that use it (same fraction and speaker subset) and
its seed is the cells' seed unless ``generator_seed`` fixes one, so the intervals over seeds also cover
the generator. It lives in ``<output>/gans/f<fraction>/{per_keyword,conditional}[_<family>][_<option>]_d<data
seed>s<generator seed>``; a folder finished with other settings is refused, never reused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ganaug.config import HparamsError, deep_merge, split_labels
from ganaug.io import atomic_write_json

__all__ = ["DEFAULT_FAMILY", "DONE_MARKER", "given_checkpoint", "generator_job", "generator_dir", "describe_generators"]

DEFAULT_FAMILY = "wavegan"
DONE_MARKER = ".ablation_done"


def given_checkpoint(hp: dict, kind: str, family: str, option: str) -> str:
    """The checkpoint path the grid was given for this kind (WaveGAN without options only), or ""."""
    given = str(hp["per_keyword_ckpt" if kind == "gan_per_keyword" else "conditional_ckpt"] or "")
    return given if family == DEFAULT_FAMILY and not option else ""


def _preset(hp: dict, kind: str, family: str) -> str:
    if family != DEFAULT_FAMILY:
        return family
    return hp["gan_per_keyword_hparams" if kind == "gan_per_keyword" else "gan_conditional_hparams"]


def generator_job(hp: dict, key: tuple, output: Path) -> tuple[Path, str, dict]:
    """Where the grid trains the generator ``key`` = ``(fraction, kind, family, option, data_seed, seed)``, the
    ``ganaug train`` config it uses and its overrides."""
    fraction, kind, family, option, data_seed, seed = key
    folder = output / "gans" / f"f{fraction:g}" / ("per_keyword" if kind == "gan_per_keyword" else "conditional")
    suffix = "".join(f"_{part}" for part in (family if family != DEFAULT_FAMILY else "", option) if part)
    folder = folder.with_name(f"{folder.name}{suffix}_d{data_seed}s{seed}")
    option_overrides = dict((hp["generator_options"] or {}).get(option) or {})
    overrides = deep_merge(deep_merge(dict(hp["gan_overrides"] or {}), option_overrides), {
        "data_folder": str(hp["data_folder"]), "output_folder": str(folder), "labels": split_labels(hp["labels"]),
        "speaker_fraction": fraction, "data_seed": int(data_seed), "seed": int(seed), "device": str(hp["device"])})
    if family != DEFAULT_FAMILY:   # the family's packaged config; one key makes it conditional
        overrides["conditional"] = kind == "gan_conditional"
    return folder, _preset(hp, kind, family), overrides


def generator_dir(hp: dict, key: tuple, output: Path, train_missing: bool = True) -> Path:
    """The given checkpoint, or the one trained for ``key`` (see :func:`generator_job`; resumes, or is
    skipped once done). A folder finished with other settings is an error; ``train_missing=False`` only
    makes that check (a re-run checks every generator before it skips any finished cell)."""
    fraction, kind, family, option = key[:4]
    given = given_checkpoint(hp, kind, family, option)
    if given:
        path = Path(given.replace("{fraction}", f"{fraction:g}"))
        if not path.is_dir():
            raise HparamsError(f"{kind}: checkpoint {path} does not exist; train it with `ganaug train` or leave the key empty")
        return path
    from ganaug.train import train

    folder, name, overrides = generator_job(hp, key, output)
    done_marker = folder / DONE_MARKER
    recorded = {k: v for k, v in overrides.items() if isinstance(v, (int, float, str, bool, list)) and k != "device"}
    if done_marker.is_file():
        before = json.loads(done_marker.read_text()).get("overrides")
        before = {k: v for k, v in (before or {}).items() if k != "device"}
        if before != json.loads(json.dumps(recorded)):
            changed = sorted(k for k in set(before) | set(recorded) if before.get(k) != recorded.get(k))
            raise HparamsError(f"{folder}: holds a generator trained with other settings ({', '.join(changed)} differ); "
                               f"give another --output_folder, or delete {folder} to train it again")
        return folder
    if not train_missing:
        return folder
    train(name, overrides)
    atomic_write_json(done_marker, {"finished": time.time(), "overrides": recorded})
    return folder


def describe_generators(hp: dict, cells: list[dict]) -> dict[str, str]:
    """What each generator arm uses, in words (printed, and written under the results table)."""
    out = {}
    for cell in cells:
        if cell["generator"] is None:
            continue
        _, kind, family, option = cell["generator"][:4]
        given = given_checkpoint(hp, kind, family, option)
        label = cell["augmentation"] + (f" [{option}]" if option else "")
        if given:
            text = f"the given checkpoint {given}{_checkpoint_facts(given, cell['speaker_fraction'])}"
        else:
            gan = deep_merge(dict(hp["gan_overrides"] or {}), dict((hp["generator_options"] or {}).get(option) or {}))
            per = "per speaker fraction and seed" if hp.get("generator_seed") is None else "per speaker fraction"
            text = (f"a {kind.replace('gan_', '').replace('_', '-')} {family} trained here {per} "
                    f"({_preset(hp, kind, family)}, d={gan.get('model_dim', '?')}, {gan.get('max_steps', '?')} steps"
                    + "".join(f", {k}={v}" for k, v in ((hp["generator_options"] or {}).get(option) or {}).items()) + ")")
        if cell["augmentation"].split("@")[0] in ("gan_filtered", "classic+gan_filtered"):
            text += f"; clips kept when the label filter's posterior >= {float(hp['filter_min_confidence']):g}"
        out[label] = text
    return out


def _checkpoint_facts(given: str, fraction: float) -> str:
    """`` (step 300, d=8, trained on 100% of the training speakers)`` from a given checkpoint's config.json."""
    from ganaug.checkpoint import find_checkpoints, is_checkpoint, read_config

    try:
        path = Path(given.replace("{fraction}", f"{fraction:g}"))
        config = read_config(path if is_checkpoint(path) else next(iter(find_checkpoints(path).values())))
    except (OSError, ValueError, StopIteration):
        return ""
    kwargs, data = config.get("kwargs") or {}, config.get("data") or {}
    facts = [f"step {config['step']}" if "step" in config else "", f"d={kwargs['model_dim']}" if "model_dim" in kwargs else "",
             f"trained on {100 * float(data['speaker_fraction']):g}% of the training speakers" if "speaker_fraction" in data else ""]
    facts = [f for f in facts if f]
    return f" ({', '.join(facts)})" if facts else ""
