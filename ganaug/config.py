"""HyperPyYAML configs: find them, chain ``base:`` presets, check and apply ``--key=value`` overrides.

A bare name (``ganaug kws kws``) finds ``kws.yaml`` among the packaged configs (``ganaug/hparams/``
in an installed wheel, the repository's ``hparams/`` in a source checkout); anything else is a path.

A preset is a file whose first key is ``base: NAME`` (a sibling ``NAME.yaml`` or a packaged
config) followed by the keys it changes; bases chain to any depth. Only the root file (the one
without ``base:``) may hold HyperPyYAML tags (``!PLACEHOLDER``, ``!ref``, ``!new:``); presets
hold plain values. Every key a preset or an override sets must be defined by the root file, and
its value must have the type of the root's value (an integer stays an integer, a list a list):
a typo or a wrong type is an :class:`HparamsError` naming the key, the file and the fix, before
any work is done. Overrides given on the command line are YAML 1.2 scalars (``--lr=1e-4``,
``--betas=[0.5,0.9]``); ``labels`` also takes a comma-separated string (``--labels=yes,no``).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

__all__ = ["HparamsError", "resolve_hparams_file", "packaged_hparams", "preset_summaries", "parse_overrides",
           "load_hparams", "split_labels", "check_device", "check_threads", "chain"]

# Upper bounds checked before anything is allocated (key -> (low, high, why)).
LIMITS = {
    "model_dim": (1, 256, "the paper's d is 64; parameters grow as d^2 (d=256: ~300M per network)"),
    "latent_dim": (1, 4096, "the paper's latent size is 100"),
    "batch_size": (1, 65536, "a batch of clips"),
}


# Keys whose value may also be null (their YAML comment says what null means).
NULLABLE = {"steps_per_epoch"}


class HparamsError(ValueError):
    """A config that cannot be used; the message says which key or file and the fix."""


# -- where configs live ------------------------------------------------------------------------------
def packaged_dir() -> Path:
    """The folder of packaged YAMLs: ``ganaug/hparams`` when installed, ``<repo>/hparams`` in a checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "hparams", here.parent / "hparams"):
        if folder.is_dir():
            return folder
    raise HparamsError(f"no packaged configs found beside {here}; reinstall ganaug")


def packaged_hparams() -> list[str]:
    """Names of the packaged configs (``ganaug kws kws`` finds ``kws``)."""
    return sorted(p.stem for p in packaged_dir().glob("*.yaml"))


def preset_summaries() -> list[tuple[str, str]]:
    """``(name, first comment line)`` of every packaged config, for ``--help``."""
    out = []
    for name in packaged_hparams():
        first = next((line.lstrip("# ").strip() for line in (packaged_dir() / f"{name}.yaml").read_text().splitlines()
                      if line.startswith("#") and line.strip("# ")), "")
        out.append((name, first))
    return out


def resolve_hparams_file(name: str | Path) -> Path:
    """A path to a YAML file, or the bare name of a packaged config."""
    path = Path(name)
    if path.is_file():
        if path.suffix not in (".yaml", ".yml"):
            raise HparamsError(f"{name}: not a YAML file; give a HyperPyYAML file (.yaml) or a packaged config: "
                               f"{', '.join(packaged_hparams())}")
        return path
    if path.suffix in ("", ".yaml") and path.parent == Path("."):
        candidate = packaged_dir() / f"{path.stem}.yaml"
        if candidate.is_file():
            return candidate
    raise HparamsError(f"{name}: no such hparams file, and no packaged config of that name; "
                       f"packaged: {', '.join(packaged_hparams())}")


# -- overrides ---------------------------------------------------------------------------------------
def parse_overrides(args: list[str]) -> dict[str, str]:
    """``["--key=value", "--flag", "value"]`` -> ``{"key": "value", ...}`` (values kept as text)."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise HparamsError(f"unexpected argument {arg!r}: overrides are written --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise HparamsError(f"{arg}: give a value, e.g. {arg}=VALUE")
            value, i = args[i + 1], i + 1
        out[key.replace("-", "_")] = value
        i += 1
    return out


def _yaml_value(text: str):
    """A command-line value as YAML 1.2 (``3`` -> 3, ``[0.5,0.9]`` -> list, ``yes`` -> "yes")."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not text.strip():
        return text
    try:
        value = YAML(typ="safe").load(text)
    except YAMLError:
        return text  # not YAML: keep the text; the type check names the key if a string does not fit
    return text if value is None and text.strip().lower() not in ("null", "~") else value


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "True or False"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "a list, e.g. [a, b]"
    if isinstance(value, dict):
        return "a mapping, e.g. {key: value}"
    return "a string"


def _is_tagged(value) -> bool:
    return getattr(value, "tag", None) is not None and getattr(value.tag, "value", None) is not None


def _coerce(key: str, value, default, where: str):
    """``value`` checked against the type of ``default`` (the root file's value)."""
    if isinstance(value, str) and not isinstance(default, str) and default is not None and not _is_tagged(default):
        value = _yaml_value(value)
    if key == "labels" and isinstance(value, str):
        return split_labels(value)
    if default is None or _is_tagged(default) or (value is None and key in NULLABLE):
        return value
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          list: lambda v: isinstance(v, list),
          dict: lambda v: isinstance(v, dict),
          str: lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    kind = next((t for t in (bool, int, float, list, dict, str) if isinstance(default, t)), None)
    if kind is not None and not ok[kind](value):
        raise HparamsError(f"--{key}={value}: {key} is {_type_name(default)} in {where} "
                           f"(default {_plain(default)}); give a value of that type")
    if kind is float:
        return float(value)
    if kind is str and not isinstance(value, str):
        return str(value)
    return value


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def deep_merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``, nested dicts merged key by key (``base`` is not changed)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# -- files -------------------------------------------------------------------------------------------
def _read_yaml(path: Path, typ: str):
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise HparamsError(f"{path}: not a text file; give a HyperPyYAML file (.yaml)") from err
    try:
        data = YAML(typ=typ).load(text)
    except MarkedYAMLError as err:
        from ruamel.yaml.constructor import ConstructorError

        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        if isinstance(err, ConstructorError) and typ == "safe":
            raise HparamsError(f"{path}{line}: presets (files with base:) hold plain values, not HyperPyYAML tags "
                               f"({err.problem}); put tagged keys in the base file") from err
        where = (f" ({err.context} at line {err.context_mark.line + 1})"
                 if err.context and err.context_mark is not None and err.problem else "")
        raise HparamsError(f"{path}{line}: broken YAML: {err.problem or err.context}{where}; fix that line") from err
    except YAMLError as err:
        raise HparamsError(f"{path}: broken YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HparamsError(f"{path}: expected a mapping of keys to values at the top level")
    return text, data


def chain(hparams_file) -> list[Path]:
    """The files of a preset chain, root (no ``base:``) first, ``hparams_file`` last."""
    files = [resolve_hparams_file(hparams_file)]
    while True:
        text = files[-1].read_text(errors="replace")
        match = re.search(r"^base:\s*(\S+)", text, re.M)
        if match is None:
            return files[::-1]
        name = match.group(1).strip("'\"")
        sibling = files[-1].parent / f"{name}.yaml"
        base = sibling if sibling.is_file() and sibling.resolve() != files[-1].resolve() else resolve_hparams_file(name)
        if any(base.resolve() == f.resolve() for f in files):
            raise HparamsError(f"{files[-1]}: base: {name} makes a loop ({' -> '.join(str(f) for f in files)})")
        files.append(base)


def _layers(hparams_file) -> tuple[Path, str, dict, list[tuple[Path, dict]]]:
    """``(root path, root text, root keys, [(preset path, its keys without base)...])``."""
    files = chain(hparams_file)
    root_text, root = _read_yaml(files[0], "rt")
    presets = []
    for path in files[1:]:
        _, own = _read_yaml(path, "safe")
        own = dict(own)
        own.pop("base", None)
        presets.append((path, own))
    return files[0], root_text, root, presets


def check_device(device) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``; CUDA only where torch sees a GPU."""
    import torch

    device = "auto" if device is None else str(device)
    if device not in ("cpu", "auto") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise HparamsError(f"device={device!r}: choose cpu, cuda (or cuda:N) or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HparamsError(f"device={device}: no CUDA GPU is visible to torch here; use --device=cpu")
    return device


def check_threads(threads, key: str = "num_threads") -> int:
    """torch CPU threads: a positive integer, or 0 (or null) for torch's default."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise HparamsError(f"{key}={threads!r}: a positive integer, or 0 for torch's default")
    return int(threads or 0)


def _check_limits(hparams: dict, where: Path) -> None:
    for key, (low, high, why) in LIMITS.items():
        value = hparams.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            raise HparamsError(f"{key}={value}: must be between {low} and {high} ({why}); set in {where} "
                               f"or with --{key}=N")


def load_hparams(hparams_file: str | Path, overrides: dict | None = None) -> tuple[dict, str]:
    """Load a HyperPyYAML file (or preset chain) with overrides; returns ``(hparams, resolved_yaml_text)``.

    Keys a preset or an override sets must be defined by the root file, with a value of the same
    type; ``!PLACEHOLDER`` keys must be given. The resolved text is the root file with every
    preset and override applied (what a run folder's ``hparams.yaml`` records).
    """
    from hyperpyyaml import load_hyperpyyaml, resolve_references
    from ruamel.yaml import YAML

    root_path, text, root, presets = _layers(hparams_file)
    known = ", ".join(sorted(root))
    merged: dict = {}
    for where, values in [*presets, ("the command line", dict(overrides or {}))]:
        for key, value in values.items():
            if key not in root:
                who = f"--{key}" if where == "the command line" else f"{where}: {key}"
                raise HparamsError(f"{who}: {root_path} defines no key {key!r}; known keys: {known}")
            value = _coerce(key, value, root[key], str(root_path))
            merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
                else value
    stream = io.StringIO()
    if merged:
        YAML().dump(_plain(merged), stream)
    override_text = stream.getvalue()
    try:
        resolved = resolve_references(text, override_text).getvalue()
        hparams = load_hyperpyyaml(text, override_text)
    except ValueError as err:
        if "placeholder" in str(err).lower():
            raise HparamsError(f"{root_path}: a required value is missing ({err}); give it as --key=value, "
                               f"e.g. --data_folder=DIR") from err
        raise HparamsError(f"{root_path}: {err}") from err
    _check_limits(hparams, root_path)
    return hparams, resolved


def split_labels(value) -> list[str] | None:
    """``["yes", "no"]`` / ``"yes,no"`` / ``None`` -> list of names or ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]
