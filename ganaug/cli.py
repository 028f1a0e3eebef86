"""The ``ganaug`` command: argument parsing, dispatch, and the one place user errors are printed.

Each command's work lives in the library; the target is imported only when the command runs,
so ``ganaug --help`` stays fast. A user error (a bad flag, a bad YAML key or value, a missing
folder or checkpoint) is one line on stderr, ``ganaug <command>: error: ...``, and exit code 2,
never a traceback: :func:`run_command` catches the library's user-error classes for every
command and for the recipe scripts (``recipes/*/train.py`` call :func:`run_yaml_command`).
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from pathlib import Path

from ganaug import __version__
from ganaug.errors import run_command

__all__ = ["main", "build_parser", "run_command", "run_yaml_command"]

# command -> ("module:function", help). YAML commands are called as fn(hparams_file, overrides).
YAML_COMMANDS = {
    "train": ("ganaug.train:main", "train WaveGAN generators (per keyword or conditional) from a HyperPyYAML file"),
    "kws": ("ganaug.kws:main", "train and test a keyword classifier (optionally with GAN augmentation)"),
    "ablate": ("ganaug.ablation:main", "run an ablation grid: speaker fractions x augmentation x seeds"),
}
# which packaged presets each YAML command takes (by name prefix), for --help
PRESETS_FOR = {"train": ("wavegan", "specgan", "tifgan"), "kws": ("kws",), "ablate": ("ablation",)}
COMMANDS = {
    "generate": "ganaug.kws.generate:main",
    "evaluate": "ganaug.metrics.evaluate:main",
    "report": "ganaug.report:main",
    "demo": "ganaug.demo:main",
    "listen": "ganaug.listen:main",
}
# flags every command accepts under both names (contract: --data_folder = --data, --output_folder = --out)
ALIASES = {"data": "data_folder", "out": "output_folder"}


def run_yaml_command(command: str, hparams_file, args: list[str]) -> int:
    """``ganaug <command> HPARAMS --key=value ...`` with the CLI's error handling (used by recipes)."""
    from ganaug.config import parse_overrides

    def go():
        overrides = parse_overrides(args)
        for short, long in ALIASES.items():
            if short in overrides:
                overrides[long] = overrides.pop(short)
        if "device" in overrides:
            from ganaug.config import check_device

            check_device(overrides["device"])
        return _target(YAML_COMMANDS[command][0])(hparams_file, overrides)

    return run_command(f"ganaug {command}", go)


def _target(spec: str):
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a positive number")
    return value


def _at_least_two(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value}: give at least 2 clips (FID needs a covariance)")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value}: give a posterior threshold in [0, 1], e.g. 0.8")
    return value


def _device(text: str) -> str:
    from ganaug.config import HparamsError, check_device

    try:
        return check_device(text)
    except HparamsError as err:
        raise argparse.ArgumentTypeError(f"{text}: {str(err).partition(': ')[2]}") from None


def _folder(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text


def _file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def _filter_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--min_confidence`` and ``--filter_classifier``: the label-consistency filter, the same on every command."""
    p.add_argument("--min_confidence", "--min-confidence", dest="min_confidence", type=_probability, default=None,
                   help=f"{what} the filter classifier gives the clip's label this posterior (e.g. 0.8)")
    p.add_argument("--filter_classifier", "--filter-classifier", dest="filter_classifier", type=_folder, default=None,
                   help="the filter's classifier folder (default: the reference classifier of the TRAIN split the "
                        "generator was trained on, trained once when missing)")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--noise_folder``, the same on every command that may train a classifier."""
    p.add_argument("--device", type=_device, default="auto",
                   help="auto (default: cuda when torch sees a GPU, else cpu; said at start), cpu, cuda or cuda:N")
    p.add_argument("--noise_folder", "--noise-folder", dest="noise_folder", default=None,
                   help="background noise for a classifier trained here (classic augmentation): default auto = "
                        "DATA/_background_noise_, else DATA/_silence_, else white noise with a warning; '' = white noise")


def _presets_epilog(command: str) -> str:
    from ganaug.config import preset_summaries

    rows = [(n, d) for n, d in preset_summaries() if n.startswith(PRESETS_FOR[command])]
    width = max(len(n) for n, _ in rows) if rows else 0
    where = {"train": "hparams/wavegan.yaml (every GAN key, one per line; presets change a few of them)",
             "kws": "hparams/kws.yaml", "ablate": "hparams/ablation.yaml"}[command]
    return ("packaged presets (give the bare name, or a path to your own YAML):\n"
            + "".join(f"  {n:<{width}}  {d}\n" for n, d in rows)
            + f"\nkeys are documented in {where}; any key can be overridden with --key=value,\n"
              f"e.g. --data_folder=DIR --output_folder=DIR (--data and --out also work).")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ganaug",
        description="Train WaveGAN generators on keyword audio and use them as data augmentation for keyword spotting.",
    )
    parser.add_argument("--version", action="version", version=f"ganaug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (_, help_text) in YAML_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=f"{help_text}. Extra --key=value arguments override the YAML.",
                           epilog=_presets_epilog(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("hparams", help="HyperPyYAML file, or the name of a packaged preset (listed below)")

    p = sub.add_parser("generate", help="pre-generate a synthetic bank: N clips per label",
                       description="Write N generated clips per label into a bank folder (flac/wav + bank.json, or an HF dataset).")
    p.add_argument("ckpt", type=_folder, help="checkpoint directory (conditional) or a per-keyword run folder")
    p.add_argument("--per-label", "--per_label", dest="per_label", type=_positive_int, required=True, help="clips per label")
    p.add_argument("--out", "--output_folder", dest="out", required=True, help="output folder")
    p.add_argument("--format", choices=("flac", "wav", "hf"), default="flac")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=_positive_int, default=64)
    _run_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    _filter_arguments(p, "keep a clip only when")
    p.add_argument("--data_folder", "--data", dest="data_folder", type=_folder, default=None,
                   help="the generator's training data, when the folder its config.json names is not here (to train "
                        "the default filter classifier for --min_confidence)")

    p = sub.add_parser("evaluate", help="IS, FID, NN distances and label accuracy of a generator",
                       description="Score a generator against real held-out speakers; writes OUT/metrics.json.")
    p.add_argument("ckpt", type=_folder, help="checkpoint directory or per-keyword run folder")
    p.add_argument("--data", "--data_folder", dest="data", type=_folder, required=True,
                   help="real data folder (Speech Commands or FSDD layout)")
    p.add_argument("--classifier", default=None, help="reference classifier folder (trained if missing)")
    p.add_argument("--out", "--output_folder", dest="out", default=None, help="folder for metrics.json (default: CKPT/eval)")
    p.add_argument("--num-clips", "--num_clips", dest="num_clips", type=_at_least_two, default=1000, help="generated clips to score")
    _run_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    _filter_arguments(p, "also report label accuracy and acceptance of the clips kept when")

    p = sub.add_parser("report", help="static HTML page to listen to and look at a generator",
                       description="Write OUT/index.html: players and spectrograms per label, metrics with a verdict, the ablation.")
    p.add_argument("ckpt", type=_folder, help="checkpoint directory or per-keyword run folder")
    p.add_argument("--out", "--output_folder", dest="out", required=True, help="output folder for index.html")
    p.add_argument("--data", "--data_folder", dest="data", type=_folder, default=None,
                   help="real data folder, for real clips beside generated ones")
    p.add_argument("--per-label", "--per_label", dest="per_label", type=_positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metrics", type=_file, default=None,
                   help="metrics.json of `ganaug evaluate` (default: found in OUT or CKPT/eval)")
    p.add_argument("--ablation", type=_file, default=None,
                   help="ablation plot PNG (default: found in an ablation* folder beside CKPT)")

    p = sub.add_parser("listen", help="blind human listening test: build it, serve it in the browser, score it",
                       description="Build: ganaug listen CKPT [CKPT ...] --data DIR --out DIR. "
                                   "Serve: ganaug listen --serve DIR [--port N]. Score: ganaug listen --score DIR.")
    p.add_argument("ckpt", nargs="*", help="generator checkpoint directories or per-keyword run folders (build)")
    p.add_argument("--data", "--data_folder", dest="data", default=None, help="real data folder; its test split gives the real clips")
    p.add_argument("--out", "--output_folder", dest="out", default=None, help="folder for the test (page, clips, key)")
    p.add_argument("--per-label", "--per_label", dest="per_label", type=_positive_int, default=5, help="clips per label and system")
    p.add_argument("--seed", type=int, default=0)
    _filter_arguments(p, "also test each generator behind its label filter, which keeps a clip when")
    p.add_argument("--serve", dest="serve_dir", metavar="DIR", default=None, help="serve the test in DIR on 127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--score", dest="score_dir", metavar="DIR", default=None, help="score the answers of the test in DIR")
    _run_arguments(p)

    p = sub.add_parser("demo", help="the main job: train a small conditional generator, evaluate, ablate, report",
                       description="The whole job on two Speech Commands keywords, sized for a 2-core CPU: train a small "
                                   "conditional WaveGAN, evaluate it, run the quick ablation with it, write the report page. "
                                   "Re-running resumes and skips finished stages.")
    p.add_argument("--data_folder", "--data", dest="data_folder", type=_folder, default=None,
                   help="Speech Commands folder (default: ../shared/data/speech_commands if present)")
    p.add_argument("--output_folder", "--out", dest="output_folder", default="runs/demo")
    _run_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exit_:   # --help, --version, or a one-line usage error already printed
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    from ganaug.env import check_torchaudio

    if run_command(f"ganaug {args.command}", check_torchaudio):   # before any work: a pair that loads
        return 2
    if args.command in YAML_COMMANDS:
        return run_yaml_command(args.command, args.hparams, extra)
    if extra:
        print(f"ganaug {args.command}: error: unrecognized arguments: {' '.join(extra)} "
              f"(see ganaug {args.command} --help)", file=sys.stderr)
        return 2
    kwargs = {k: v for k, v in vars(args).items() if k != "command"}
    return run_command(f"ganaug {args.command}", lambda: _target(COMMANDS[args.command])(**kwargs))


if __name__ == "__main__":
    sys.exit(main())
