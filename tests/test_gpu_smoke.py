"""``bench/gpu_smoke.py`` (issue 22 item 6) on CPU, at tiny size, as CI runs it: the precision x compile matrix
with the modes valid on CPU (first-step losses within tolerance of eager float32), then ``wavegan_fast`` and
``wavegan_conditional`` trained for the same (tiny) budget on real keyword clips, stopped by SIGINT, and scored."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from ganaug.models.classifier import KWSClassifier, save_classifier

REPO = Path(__file__).resolve().parents[1]


def test_gpu_smoke_runs_on_cpu(mini_sc, tmp_path):
    torch.manual_seed(0)
    scorer = save_classifier(tmp_path / "scorer", KWSClassifier(["yes", "no"]))   # a classifier neither G trained against
    cmd = [sys.executable, str(REPO / "bench" / "gpu_smoke.py"), "--device", "cpu", "--data_folder", str(mini_sc),
           "--model_dim", "4", "--batch", "4", "--steps", "2", "--minutes", "0.05", "--compile_backend", "aot_eager",
           "--classifier", str(scorer), "--num_clips", "8", "--num_threads", "1", "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    matrix = re.findall(r"^\| (none|bf16) \| (none|default|reduce-overhead) \| (\S+) \| \S+ \| (yes|NO) \| "
                        r"[\d.]+ \| ([\d.]+) \|", out, re.M)
    assert [(amp, comp) for amp, comp, *_ in matrix] == [("none", "none"), ("none", "default")]   # CPU-valid modes
    assert all(ok == "yes" and float(rate) > 0 for *_, ok, rate in matrix), out
    budget = re.findall(r"^\| (wavegan_fast|wavegan_conditional) \| (\d+) \| .* \| ([\d.]+) \(([\d.]+)-([\d.]+), n=8\)",
                        out, re.M)
    assert [row[0] for row in budget] == ["wavegan_fast", "wavegan_conditional"], out
    for _, steps, acc, low, high in budget:
        assert int(steps) >= 1 and 0 <= float(low) <= float(acc) <= float(high) <= 1
    for preset in ("wavegan_fast", "wavegan_conditional"):             # SIGINT checkpointed each run
        assert (tmp_path / "out" / preset / "generator.safetensors").is_file()
        assert "SIGINT at step" in (tmp_path / "out" / f"{preset}.log").read_text()
