"""Run every benchmark in one go: CPU parts on any machine, GPU parts when CUDA is present.

    python bench/run_all.py [--data_folder ../shared/data/speech_commands] [--quick] [--gpu_only]

Each script runs in its own process (so thread settings and memory do not leak between them) and
prints its own figures; this wrapper prints the load average and wall time around each. ``--gpu_only``
runs just the CUDA parts (about 5 minutes on one H100: generation at a large batch, the bf16 matmul rate,
and paper WGAN-GP iterations/s in four precision/compile variants).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_folder", default=str(HERE.parents[1] / "shared" / "data" / "speech_commands"))
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps (a smoke run)")
    parser.add_argument("--gpu_only", action="store_true", help="only the CUDA parts")
    args = parser.parse_args()
    data = ["--data_folder", args.data_folder]
    quick_gen = ["--rounds", "3"] if args.quick else []
    quick_train = ["--rounds", "1", "--curve_steps", "4", "--kws_rounds", "1", "--kws_clips", "256"] if args.quick else []
    if args.gpu_only:
        runs = [["bench_generate.py", "--no_cpu"],
                ["bench_train.py", *data, "--parts", "gan", "--no_cpu"]]
    else:
        runs = [["bench_generate.py", *quick_gen],
                ["bench_train.py", *data, *quick_train],
                ["bench_data.py", *data],
                ["bench_augment.py", *data],
                ["bench_inversion.py"]]
    failed = 0
    for script, *extra in runs:
        cmd = [sys.executable, str(HERE / script), *extra]
        print(f"\n=== {' '.join(cmd[1:])}  (load average {loadavg()})", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd)
        print(f"=== {script}: exit {code}, {time.perf_counter() - t0:.0f} s", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
