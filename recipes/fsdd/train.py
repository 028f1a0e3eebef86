#!/usr/bin/env python3
"""SpeechBrain-style entry point: ``python train.py [HPARAMS.yaml] --data_folder=DIR --output_folder=DIR``.

A thin wrapper over ``ganaug kws`` (the recipe lives in ``ganaug.kws``); HPARAMS defaults to the
packaged ``kws`` config.
"""

import sys

from ganaug.cli import run_yaml_command

if __name__ == "__main__":
    args = sys.argv[1:]
    hparams = args.pop(0) if args and not args[0].startswith("--") else "kws"
    sys.exit(run_yaml_command("kws", hparams, args))   # a user error: one line on stderr, exit code 2
