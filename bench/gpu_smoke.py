"""GPU smoke test of the training step, ready for the first GPU lent (issue 22 item 6); runs on CPU too.

    python bench/gpu_smoke.py                       # CUDA when visible: the table docs/performance.md needs
    python bench/gpu_smoke.py --device cpu --model_dim 4 --batch 4 --steps 3 --minutes 0.05   # what CI runs

Part ``matrix``: for each precision (``amp`` none, bf16) and compile mode (none, default, reduce-overhead), the
conditional WaveGAN step (``wavegan_conditional`` at ``--model_dim``, 5 critic + 1 generator updates) from the
same seed: the first step's losses against eager float32 (relative difference, with the tolerance it must meet:
``FP32_TOL`` for float32, ``BF16_TOL`` under bf16), then ``--steps`` steps timed (it/s) and peak memory. A mode
that failed to compile says so (it fell back to eager: ``ganaug.train.compiled``). On CPU only the modes valid
there run (amp none; compile none and default; CUDA graphs and bf16 autocast are CUDA's).

Part ``minutes``: ``ganaug train wavegan_fast`` and ``ganaug train wavegan_conditional`` for the same budget,
stopped by SIGINT (which checkpoints), then the label accuracy of each exported generator (with its 95% Wilson
interval) as heard by a classifier neither generator trained against (``--classifier``, default the reference
classifier of the TRAIN split, trained when missing), and with ``--tstr`` the TSTR accuracy (``ganaug kws
--train_source=synthetic``). ``--clock train`` counts the loop's own training seconds (``train_seconds`` of
``logs/stats.jsonl``); ``--clock cpu`` the process's CPU time (fair on a shared machine, one thread each);
``--side_by_side`` runs both at once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "speech_commands"
FP32_TOL = 1e-3        # relative difference of a first-step loss, float32 compiled vs eager
BF16_TOL = 5e-2        # ... under bf16 autocast (8 bits of mantissa)
PRESETS = ("wavegan_fast", "wavegan_conditional")


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def clips(args) -> tuple[torch.Tensor, torch.Tensor]:
    """Real TRAIN clips of ``--labels`` (noise when the data is absent: speed does not depend on it)."""
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload

    if not Path(args.data_folder).is_dir():
        print(f"{args.data_folder}: not found; the matrix runs on noise clips")
        return torch.rand(256, 16384).sub_(0.5).mul_(0.2), torch.randint(len(args.labels), (256,))
    ds = KeywordDataset(args.data_folder, labels=args.labels, split="train", num_samples=16384)
    return preload(ds, progress=False)


def modes(device: str) -> list[tuple[str, str]]:
    if device == "cpu":
        return [("none", "none"), ("none", "default")]
    return [(amp, comp) for amp in ("none", "bf16") for comp in ("none", "default", "reduce-overhead")]


def one_mode(args, data, labels, amp: str, compile_mode: str) -> dict:
    """First-step losses, it/s over ``--steps`` steps and peak memory of one (amp, compile) mode."""
    from ganaug.train.options import TrainOptions
    from ganaug.train.run import preset_models
    from ganaug.train.step import GanStep

    device = torch.device(args.device)
    G, D = preset_models("wavegan_conditional", args.labels, model_dim=args.model_dim)
    opts = TrainOptions(batch_size=args.batch, amp=amp, compile=compile_mode)
    if device.type == "cuda":
        data, labels = data.to(device), labels.to(device)
        torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = GanStep(G.to(device).train(), D.to(device).train(), opts, device, data, labels, args.batch, seed=0,
                      compile_backend=args.compile_backend)
        started = time.perf_counter()
        step(run, opts)
        first = {k: float(v) for k, v in run.pop_stats().items()}
        compile_s = time.perf_counter() - started
        sync(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            step(run, opts)
        run.pop_stats()
        sync(device)
        rate = args.steps / (time.perf_counter() - started)
    fallbacks = [str(w.message) for w in caught if "runs eagerly" in str(w.message)]
    memory = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"amp": amp, "compile": compile_mode, "first": first, "first_step_s": compile_s, "it_s": rate,
            "memory_gib": memory, "fallbacks": fallbacks}


def step(run, opts) -> None:
    for _ in range(opts.d_steps_per_g_step):
        run.critic_step()
    run.generator_step()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matrix(args) -> list[dict]:
    data, labels = clips(args)
    rows = [one_mode(args, data, labels, amp, comp) for amp, comp in modes(args.device)]
    base = rows[0]["first"]
    where = "GPU memory (peak allocated)" if args.device.startswith("cuda") else "process peak RSS so far"
    print(f"\n### Step matrix: wavegan_conditional d={args.model_dim}, batch {args.batch}, 5 D + 1 G, {args.steps} "
          f"timed steps, device {device_name(args.device)}, load average {loadavg()}\n")
    print(f"| amp | compile | first-step losses vs eager fp32 (max rel. diff) | tolerance | ok | first step s | it/s | "
          f"{where} GiB | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        diff = max(abs(row["first"][k] - v) / max(abs(v), 1e-3) for k, v in base.items())
        tol = BF16_TOL if row["amp"] == "bf16" else FP32_TOL
        row.update(rel_diff=diff, tolerance=tol, ok=diff <= tol)
        note = "fell back to eager: " + row["fallbacks"][0][:120] if row["fallbacks"] else ""
        print(f"| {row['amp']} | {row['compile']} | {diff:.2e} | {tol:g} | {'yes' if row['ok'] else 'NO'} | "
              f"{row['first_step_s']:.1f} | {row['it_s']:.3f} | {row['memory_gib']:.2f} | {note} |")
    return rows


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"


# -- equal budgets -------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def train_seconds(out: Path) -> float:
    path = out / "logs" / "stats.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    try:
        return json.loads(lines[-1])["train_seconds"] if lines else 0.0
    except (json.JSONDecodeError, KeyError):
        return 0.0


def train_command(args, preset: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "ganaug.cli", "train", preset, f"--data_folder={args.data_folder}",
            f"--output_folder={out}", f"--labels={','.join(args.labels)}", f"--model_dim={args.model_dim}",
            f"--batch_size={args.batch}", "--max_steps=10000000", f"--log_interval_steps={args.log_interval}",
            "--ckpt_interval_steps=10000000", f"--device={args.device}", f"--num_threads={args.num_threads}",
            "--progress=False", "--tensorboard=False", "--samples_per_label=1"]


def train_for(args, presets) -> dict[str, dict]:
    """Each preset trained for ``--minutes`` on ``--clock``, stopped by SIGINT (the run checkpoints); one after
    the other, or with ``--side_by_side`` all at once (each stopped when its own clock reaches the budget)."""
    budget = args.minutes * 60
    runs = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.num_threads))}
    for preset in presets:
        out = Path(args.out) / preset
        log = open(Path(args.out) / f"{preset}.log", "w")
        proc = subprocess.Popen(train_command(args, preset, out), stdout=log, stderr=subprocess.STDOUT, env=env)
        runs[preset] = {"out": out, "proc": proc, "log": log, "cpu_s": 0.0}
        if not args.side_by_side:
            _wait([runs[preset]], budget, args.clock)
    _wait(list(runs.values()), budget, args.clock)
    return runs


def _wait(runs: list[dict], budget: float, clock: str) -> None:
    """Poll every run once a second; SIGINT each when its clock reaches ``budget``."""
    live = [run for run in runs if run["proc"].poll() is None]
    while live:
        for run in live:
            if not run.get("stopped"):
                run["cpu_s"] = cpu_seconds(run["proc"].pid)
            used = run["cpu_s"] if clock == "cpu" else train_seconds(run["out"])
            if used >= budget and not run.get("stopped"):
                run["proc"].send_signal(signal.SIGINT)          # it finishes the step and checkpoints
                run["stopped"] = True
        live = [run for run in live if run["proc"].poll() is None]
        time.sleep(1.0)
    for run in runs:
        run["log"].close()
        if run["proc"].returncode not in (0, 128 + signal.SIGINT, -signal.SIGINT):
            raise SystemExit(f"{run['out']}: training failed (exit {run['proc'].returncode}); see {run['log'].name}")


def score(args, runs: dict) -> None:
    from ganaug.ablation.stats import wilson_interval
    from ganaug.metrics.evaluate import evaluate_generator

    classifier = args.classifier
    if classifier is None:
        from ganaug.kws.reference import ensure_reference

        classifier = ensure_reference(args.data_folder, args.labels, device=args.device, progress=False)
    print(f"\n### Equal budgets: {args.minutes:g} min of {args.clock} time per preset"
          f"{', side by side' if args.side_by_side else ''}, d={args.model_dim}, batch {args.batch}, labels "
          f"{','.join(args.labels)}, device {device_name(args.device)}, load average {loadavg()}\n")
    print("| preset | steps | train s | process CPU s | label accuracy (95% Wilson) | TSTR |")
    print("|---|---|---|---|---|---|")
    for preset, run in runs.items():
        config = json.loads((run["out"] / "config.json").read_text())
        result = evaluate_generator(run["out"], args.data_folder, classifier=classifier, num_clips=args.num_clips,
                                    device=args.device, metrics=("label_acc",), progress=False)
        acc = result["generated"]["label_acc"]
        low, high = wilson_interval(acc * args.num_clips, args.num_clips)
        tstr = f"{tstr_accuracy(args, run['out']):.3f}" if args.tstr else "-"
        print(f"| {preset} | {config['step']} | {train_seconds(run['out']):.0f} | {run['cpu_s']:.0f} | "
              f"{acc:.3f} ({low:.3f}-{high:.3f}, n={args.num_clips}) | {tstr} |")
    print(f"\nscorer: {classifier} (test accuracy {result['classifier']['test_acc']})")


def tstr_accuracy(args, ckpt: Path) -> float:
    """Test accuracy of ``ganaug kws`` trained on the generator's clips only (train on synthetic, test on real)."""
    out = ckpt.parent / f"tstr_{ckpt.name}"
    cmd = [sys.executable, "-m", "ganaug.cli", "kws", "kws", f"--data_folder={args.data_folder}",
           f"--output_folder={out}", f"--labels={','.join(args.labels)}", "--train_source=synthetic",
           f"--gan_ckpt={ckpt}", f"--device={args.device}", f"--num_threads={args.num_threads}", "--progress=False"]
    subprocess.run(cmd, check=True, capture_output=True)
    return json.loads((out / "results.json").read_text())["test_acc"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--parts", default="matrix,minutes")
    parser.add_argument("--data_folder", default=str(DEFAULT_DATA))
    parser.add_argument("--labels", default="yes,no")
    parser.add_argument("--model_dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode, after the first")
    parser.add_argument("--compile_backend", default="inductor")
    parser.add_argument("--minutes", type=float, default=1.0, help="budget per preset (part minutes)")
    parser.add_argument("--clock", choices=("train", "cpu"), default="train")
    parser.add_argument("--side_by_side", action="store_true")
    parser.add_argument("--log_interval", type=int, default=10)
    parser.add_argument("--num_threads", type=int, default=0)
    parser.add_argument("--classifier", default=None, help="scorer folder (default: the reference classifier)")
    parser.add_argument("--num_clips", type=int, default=500)
    parser.add_argument("--tstr", action="store_true", help="also TSTR (a kws run per generator)")
    parser.add_argument("--out", default="runs/gpu_smoke")
    args = parser.parse_args(argv)
    args.labels = args.labels.split(",")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, device {device_name(args.device)}, load average {loadavg()}")
    parts = args.parts.split(",")
    if "matrix" in parts:
        matrix(args)
    if "minutes" in parts:
        score(args, train_for(args, PRESETS))


if __name__ == "__main__":
    main()
