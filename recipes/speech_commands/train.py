#!/usr/bin/env python3
"""SpeechBrain-style entry point: ``python train.py [HPARAMS.yaml] --data_folder=DIR --output_folder=DIR``.

A thin wrapper over ``ganaug kws`` (the recipe lives in ``ganaug.kws``); HPARAMS defaults to the
packaged ``kws`` config.
"""

import sys

from ganaug.hparams import parse_overrides
from ganaug.kws import main

if __name__ == "__main__":
    args = sys.argv[1:]
    hparams = args.pop(0) if args and not args[0].startswith("--") else "kws"
    sys.exit(main(hparams, parse_overrides(args)))
