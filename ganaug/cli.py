"""The ``ganaug`` command: argument parsing and dispatch only.

Each command's work lives in the library; the target is imported only when the command runs,
so ``ganaug --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from ganaug import __version__

# command -> "module:function". YAML commands are called as fn(hparams_file, overrides).
YAML_COMMANDS = {
    "train": ("ganaug.train:main", "train WaveGAN generators (per keyword or conditional) from a HyperPyYAML file"),
    "kws": ("ganaug.kws:main", "train and test a keyword classifier (optionally with GAN augmentation)"),
    "ablate": ("ganaug.ablation:main", "run an ablation grid: speaker fractions x augmentation x seeds"),
}
COMMANDS = {
    "generate": "ganaug.kws.generate:main",
    "evaluate": "ganaug.metrics.evaluate:main",
    "report": "ganaug.report:main",
    "demo": "ganaug.demo:main",
    "listen": "ganaug.listen:main",
}


def _target(spec: str):
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganaug",
        description="Train WaveGAN generators on keyword audio and use them as data augmentation for keyword spotting.",
    )
    parser.add_argument("--version", action="version", version=f"ganaug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in YAML_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=f"{help_text}. Extra --key=value arguments override the YAML.")
        p.add_argument("hparams", help="HyperPyYAML file, or the name of a packaged one (e.g. 'kws')")

    p = sub.add_parser("generate", help="pre-generate a synthetic bank: N clips per label")
    p.add_argument("ckpt", help="checkpoint directory (conditional) or a per-keyword run folder")
    p.add_argument("--per-label", dest="per_label", type=int, required=True, help="clips per label")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=("flac", "wav", "hf"), default="flac")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min_confidence", type=float, default=None,
                   help="keep a clip only when the filter classifier gives its label this posterior (e.g. 0.8)")
    p.add_argument("--filter_classifier", default=None,
                   help="classifier folder of the filter (default: the generator's reference classifier)")

    p = sub.add_parser("evaluate", help="IS, FID, NN distances and label accuracy of a generator")
    p.add_argument("ckpt", help="checkpoint directory or per-keyword run folder")
    p.add_argument("--data", required=True, help="real data folder (Speech Commands or FSDD layout)")
    p.add_argument("--classifier", default=None, help="reference classifier folder (trained if missing)")
    p.add_argument("--out", default=None, help="folder for metrics.json (default: CKPT/eval)")
    p.add_argument("--num-samples", dest="num_samples", type=int, default=1000, help="generated clips to score")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("report", help="static HTML page to listen to and look at a generator")
    p.add_argument("ckpt", help="checkpoint directory or per-keyword run folder")
    p.add_argument("--out", required=True, help="output folder for index.html")
    p.add_argument("--data", default=None, help="real data folder, for real clips beside generated ones")
    p.add_argument("--per-label", dest="per_label", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metrics", default=None, help="metrics.json of `ganaug evaluate` (default: found in OUT or CKPT/eval)")
    p.add_argument("--ablation", default=None, help="ablation plot PNG (default: found in an ablation* folder beside CKPT)")

    p = sub.add_parser("listen", help="blind human listening test: build it, serve it in the browser, score it",
                       description="Build: ganaug listen CKPT [CKPT ...] --data DIR --out DIR. "
                                   "Serve: ganaug listen --serve DIR [--port N]. Score: ganaug listen --score DIR.")
    p.add_argument("ckpt", nargs="*", help="generator checkpoint directories or per-keyword run folders (build)")
    p.add_argument("--data", "--data_folder", dest="data", default=None, help="real data folder; its test split gives the real clips")
    p.add_argument("--out", "--output_folder", dest="out", default=None, help="folder for the test (page, clips, key)")
    p.add_argument("--per-label", dest="per_label", type=int, default=5, help="clips per label and system")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min_confidence", type=float, default=None, help="also test each generator behind its label filter")
    p.add_argument("--filter_classifier", default=None, help="the filter's classifier folder (default: the reference one)")
    p.add_argument("--serve", dest="serve_dir", metavar="DIR", default=None, help="serve the test in DIR on 127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--score", dest="score_dir", metavar="DIR", default=None, help="score the answers of the test in DIR")

    p = sub.add_parser("demo", help="the main job: train a small conditional generator, evaluate, ablate, report")
    p.add_argument("--data_folder", default=None, help="Speech Commands folder (default: ../shared/data/speech_commands if present)")
    p.add_argument("--output_folder", default="runs/demo")
    p.add_argument("--device", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in YAML_COMMANDS:
        from ganaug.hparams import HparamsError, parse_overrides

        try:
            overrides = parse_overrides(extra)
        except HparamsError as err:
            parser.error(str(err))
        return int(_target(YAML_COMMANDS[args.command][0])(args.hparams, overrides) or 0)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    kwargs = {k: v for k, v in vars(args).items() if k != "command"}
    return int(_target(COMMANDS[args.command])(**kwargs) or 0)


if __name__ == "__main__":
    sys.exit(main())
