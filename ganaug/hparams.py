"""HyperPyYAML configs: find them, apply ``--key=value`` overrides, write the resolved file.

A bare name (``ganaug kws kws``) finds ``ganaug/hparams/kws.yaml`` inside the installed package;
anything else is a path. Overrides are YAML 1.2 scalars (so ``--labels=yes,no`` stays a string).
"""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

__all__ = ["resolve_hparams_file", "parse_overrides", "load_hparams", "split_labels", "HparamsError"]


class HparamsError(ValueError):
    """A config that cannot be used; the message says which key or file and the fix."""


def packaged_hparams() -> list[str]:
    folder = resources.files("ganaug") / "hparams"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_hparams_file(name: str | Path) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix in ("", ".yaml") and path.parent == Path("."):
        candidate = resources.files("ganaug") / "hparams" / f"{path.stem}.yaml"
        if candidate.is_file():
            return Path(str(candidate))
    raise HparamsError(f"{name}: no such hparams file, and no packaged config of that name; packaged: {packaged_hparams()}")


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


def _override_yaml(overrides: dict) -> str:
    from ruamel.yaml import YAML

    stream = io.StringIO()
    yaml = YAML()
    parsed = {}
    for key, value in overrides.items():
        if isinstance(value, str):
            loaded = YAML(typ="safe").load(value) if value.strip() else value
            value = loaded if loaded is not None or value.strip().lower() in ("null", "~") else value
        parsed[key] = value
    yaml.dump(parsed, stream)
    return stream.getvalue()


def load_hparams(hparams_file: str | Path, overrides: dict | None = None) -> tuple[dict, str]:
    """Load a HyperPyYAML file with overrides; returns ``(hparams, resolved_yaml_text)``.

    A key given as an override that the file does not define is an error (it would be ignored
    silently otherwise); ``!PLACEHOLDER`` keys must be given.
    """
    from hyperpyyaml import load_hyperpyyaml, resolve_references
    from ruamel.yaml import YAML

    path = resolve_hparams_file(hparams_file)
    text = path.read_text()
    overrides = dict(overrides or {})
    defined = YAML(typ="rt").load(text) or {}
    unknown = sorted(k for k in overrides if k not in defined)
    if unknown:
        raise HparamsError(f"{path}: does not define {unknown}; keys it defines: {sorted(defined)}")
    override_text = _override_yaml(overrides) if overrides else ""
    try:
        resolved = resolve_references(text, override_text).getvalue()
        hparams = load_hyperpyyaml(text, override_text)
    except ValueError as err:
        if "PLACEHOLDER" in str(err) or "placeholder" in str(err):
            raise HparamsError(f"{path}: a required value is missing ({err}); give it as --key=value, e.g. --data_folder=DIR") from err
        raise HparamsError(f"{path}: {err}") from err
    return hparams, resolved


def split_labels(value) -> list[str] | None:
    """``"yes,no"`` / ``["yes", "no"]`` / ``None`` -> list of names or ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]
