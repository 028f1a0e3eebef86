"""The data-efficient training options (issue 11 item 2, made sound by issue 22) through ``ganaug train`` on
real keyword audio.

Each option trains a few CPU steps of a tiny conditional model on the mini Speech Commands fixture,
logs its named loss terms, and resumes bit-exact: a run stopped at step 2 and rerun to step 3 ends
with the same weights, optimizers, EMA, extra critics, ADA state and RNG as a run straight to step 3.
Combinations that cannot work are one line before any work; the two presets say what they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganaug.checkpoint import load_generator
from ganaug.cli import main as cli
from ganaug.models.classifier import KWSClassifier, save_classifier
from ganaug.train.state import list_states

REPO = Path(__file__).resolve().parents[1]
COND = str(REPO / "hparams" / "wavegan_conditional.yaml")


@pytest.fixture(scope="module")
def small(mini_sc, tmp_path_factory) -> list[str]:
    cache = tmp_path_factory.mktemp("clip_cache")
    return [f"--data_folder={mini_sc}", "--labels=yes,no", "--model_dim=8", "--batch_size=4", "--d_steps_per_g_step=2",
            "--device=cpu", "--num_threads=1", "--progress=False", "--tensorboard=False", f"--cache_dir={cache}",
            "--log_interval_steps=1", "--samples_per_label=1"]


@pytest.fixture(scope="module")
def frozen_classifier(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_classifier(tmp_path_factory.mktemp("clf") / "clf", KWSClassifier(["no", "yes", "up"]))


def state(ckpt: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "train_state" / f"step_{step:09d}" / "state.safetensors"))


def stats(ckpt: Path) -> list[dict]:
    return [json.loads(line) for line in (ckpt / "logs" / "stats.jsonl").read_text().splitlines()]


OPTIONS = {
    "ema": (["--ema_decay=0.9"], {"D/wgan", "D/gp", "G/adv"}),
    "ema_no_rampup": (["--ema_decay=0.9", "--ema_rampup=0"], {"D/wgan", "G/adv"}),
    "diffaug_ada": (["--loss=nsgan", "--r1_gamma=1.0", "--diffaug=shift,gain,cutout,band", "--ada_target=0.6",
                     "--ada_kimg=0.004"], {"D/nsgan", "aug/p"}),
    "diffaug_fixed": (["--diffaug=shift,cutout", "--diffaug_p=0.5"], {"D/wgan", "D/gp"}),
    "nsgan_r1": (["--loss=nsgan", "--r1_gamma=1.0"], {"D/nsgan", "D/r1", "G/adv"}),
    "hinge_r1_lazy": (["--loss=hinge", "--r1_gamma=1.0", "--gp_interval=2"], {"D/hinge", "D/r1"}),
    "wgan_clip": (["--loss=wgan-clip"], {"D/wgan"}),
    "stft_critic": (["--stft_critic=True"], {"D/stft", "G/stft", "D/gp", "D/stft_gp"}),
    "stft_critic_hinge_lazy": (["--stft_critic=True", "--loss=hinge", "--r1_gamma=1.0", "--gp_interval=2"],
                               {"D/stft", "D/r1", "D/stft_r1"}),
    "aux_projection": (["--aux_weight=1.0", "--aux=projection"], {"D/aux", "G/aux"}),
    "aux_acgan": (["--aux_weight=1.0", "--aux=acgan"], {"D/aux", "G/aux"}),
    "aux_frozen": (["--aux_weight=1.0", "--aux=frozen"], {"G/aux"}),
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_option_trains_and_resumes_bit_exact(option, small, frozen_classifier, tmp_path):
    extra, terms = OPTIONS[option]
    if option == "aux_frozen":
        extra = [*extra, f"--aux_classifier={frozen_classifier}"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = [*small, *extra, "--ckpt_interval_steps=2"]
    assert cli(["train", COND, *args, f"--output_folder={straight}", "--max_steps=3"]) == 0
    assert cli(["train", COND, *args, f"--output_folder={resumed}", "--max_steps=2"]) == 0
    assert cli(["train", COND, *args, f"--output_folder={resumed}", "--max_steps=3"]) == 0
    a, b = state(straight, 3), state(resumed, 3)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), option
    assert load_file(str(straight / "generator.safetensors")).keys() == load_file(str(resumed / "generator.safetensors")).keys()
    rows = stats(straight)
    assert [r["step"] for r in rows] == [1, 2, 3]
    logged = set().union(*rows)                          # a lazy penalty shows in the rows of the steps it ran
    assert terms <= logged, logged
    assert all(torch.isfinite(torch.tensor(v)) for r in rows for v in r.values())
    exported = load_file(str(straight / "generator.safetensors"))
    assert not any(k.startswith(("D", "stft", "critics")) for k in exported)      # critics stay in train_state
    if option == "diffaug_ada":
        assert 0 < rows[-1]["aug/p"] <= 1 and "ada.p" in a                      # p adapted and saved
    if option == "stft_critic":
        assert any(k.startswith("D_stft.") for k in a)
    if option == "aux_acgan":
        assert any(k.startswith("D_aux.") for k in a)
    if option == "wgan_clip":
        assert all(v.abs().max() <= 0.01 for k, v in a.items() if k.startswith("D.") and v.is_floating_point())
        assert "opt_D.0.square_avg" in a and not [k for k in a if k.endswith("exp_avg")]      # RMSProp, not Adam
    if option == "ema":
        assert all(torch.equal(exported[k], a[f"G_ema.{k}"]) for k in exported)
    G = load_generator(straight)
    assert G.sample(2, ["yes", "no"]).shape == (2, 16384)


def test_default_options_log_what_they_did_before(small, tmp_path):
    out = tmp_path / "run"
    assert cli(["train", COND, *small, f"--output_folder={out}", "--max_steps=1"]) == 0
    assert set(stats(out)[0]) == {"step", "D/wgan", "D/gp", "D/loss", "G/adv", "steps_per_s", "train_seconds"}
    assert not [k for k in state(out, 1) if k.startswith(("D_", "ada."))]


@pytest.mark.parametrize("extra, fragment", [
    (["--loss=lsgan"], "loss='lsgan'"),
    (["--diffaug=flip"], "flip"),
    (["--loss=hinge", "--r1_gamma=1", "--ada_target=0.6"], "diffaug"),
    (["--gp_precision=bf16"], "gp_precision=float32"),
    (["--compile=max"], "compile='max'"),
    (["--gp_interval=0"], "gp_interval=0"),
    (["--aux_weight=1", "--aux=frozen", "--aux_classifier=/nonexistent/clf"], "/nonexistent/clf"),
    # issue 22: the combinations that cannot work
    (["--diffaug=shift", "--ada_target=0.6"], "WGAN critic has no fixed zero"),
    (["--loss=wgan-clip", "--diffaug=shift", "--ada_target=0.6"], "--loss=nsgan or --loss=hinge"),
    (["--gp_interval=4"], "gp_interval=4 with loss=wgan-gp"),
    (["--loss=nsgan", "--gp_interval=4"], "r1_gamma=0.0"),
    (["--ema_rampup=-1"], "ema_rampup=-1"),
    (["--spectral_norm=True"], "spectral_norm=True (set in the command line) is a key of model tifgan"),
    (["--griffin_lim_iters=4"], "model=wavegan does not take it"),
])
def test_bad_options_are_one_clear_error(small, tmp_path, capsys, extra, fragment):
    assert cli(["train", COND, *small, f"--output_folder={tmp_path / 'run'}", "--max_steps=1", *extra]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]            # after the run's info line, if any
    assert last.startswith("ganaug train: error:") and fragment in last, last
    assert not list_states(tmp_path / "run")


def test_aux_frozen_defaults_to_the_reference_classifier_of_the_data(small, mini_sc, tmp_path, monkeypatch, capsys):
    from ganaug.data import KeywordDataset
    from ganaug.models.classifier import reference_dir

    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))           # no reference classifier yet
    args = ["train", COND, *small, "--max_steps=1", "--aux_weight=1", "--aux=frozen"]
    assert cli([*args, f"--output_folder={tmp_path / 'a'}"]) == 2
    expected = reference_dir(KeywordDataset(mini_sc, labels=["yes", "no"], split="train").fingerprint(), ["yes", "no"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(expected) in last and "--aux_classifier=DIR" in last
    torch.manual_seed(0)
    save_classifier(expected, KWSClassifier(["yes", "no"]))
    assert cli([*args, f"--output_folder={tmp_path / 'b'}"]) == 0       # found by default
    assert "G/aux" in stats(tmp_path / "b")[0]


def test_a_classifier_the_generator_was_trained_to_please_is_flagged_as_its_judge(small, mini_sc, frozen_classifier,
                                                                                   tmp_path, monkeypatch):
    """aux: frozen optimises G's clips for one classifier; that classifier as filter or scorer says how well G fooled
    it, not whether the clips say their label. The default filter and scorer are that very classifier."""
    from ganaug.augment.filter import not_independent, trained_against
    from ganaug.augment.source import GeneratorSource, with_filter
    from ganaug.data import KeywordDataset
    from ganaug.metrics.evaluate import evaluate_generator, format_table
    from ganaug.models.classifier import reference_dir

    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    reference = reference_dir(KeywordDataset(mini_sc, labels=["yes", "no"], split="train").fingerprint(), ["yes", "no"])
    torch.manual_seed(0)
    save_classifier(reference, KWSClassifier(["yes", "no"]))
    other = save_classifier(tmp_path / "other", KWSClassifier(["yes", "no"]))
    run = tmp_path / "run"
    assert cli(["train", COND, *small, "--max_steps=1", "--aux_weight=1", "--aux=frozen", f"--output_folder={run}"]) == 0
    source = GeneratorSource(run)
    assert trained_against(next(iter(source.configs.values()))) == reference.resolve()
    with pytest.warns(UserWarning, match=r"was trained to please it \(aux: frozen\)"):
        with_filter(source, 0.5)                                      # the default filter: the reference classifier
    assert not not_independent(source.configs, other) and not not_independent(source.configs, frozen_classifier)
    with pytest.warns(UserWarning, match="label accuracy, IS and FID are not independent"):
        result = evaluate_generator(run, mini_sc, classifier=reference, num_clips=8, metrics=("label_acc",),
                                    device="cpu", progress=False, min_confidence=0.5, filter_classifier=reference)
    assert result["classifier"]["trained_against"] and result["filter"]["trained_against"]
    assert "**Not independent:**" in format_table(result) and "acceptance is no evidence" in format_table(result)
    assert "trained_against" not in evaluate_generator(run, mini_sc, classifier=other, num_clips=8, metrics=("label_acc",),
                                                       device="cpu", progress=False)["classifier"]


def test_aux_needs_a_conditional_run(small, tmp_path, capsys):
    assert cli(["train", "wavegan", *small, f"--output_folder={tmp_path / 'run'}", "--max_steps=1",
                "--aux_weight=1"]) == 2
    assert "conditional" in capsys.readouterr().err


def test_fast_preset_is_the_modern_recipe_and_trains_on_cpu(small, tmp_path):
    """hparams/wavegan_fast.yaml: nsgan + lazy R1 (16) + 1 critic step + DiffAugment/ADA + EMA with ramp-up +
    the AC-GAN head, float32 and eager; its lazy R1 pass runs on the first critic step."""
    out = tmp_path / "fast"
    assert cli(["train", "wavegan_fast", *small, f"--output_folder={out}", "--max_steps=2",
                "--d_steps_per_g_step=1"]) == 0
    rows = stats(out)
    assert {"D/nsgan", "D/r1", "D/aux", "G/aux", "aug/p"} <= set().union(*rows)
    assert "D/gp" not in set().union(*rows)
    saved = state(out, 2)
    assert "G_ema.dense.weight" in saved and any(k.startswith("D_aux.") for k in saved)
    meta = json.loads((out / "train_state" / "step_000000002" / "state.json").read_text())
    group = meta["opt_D"]["param_groups"][0]
    assert group["lr"] == pytest.approx(2e-4 * 16 / 17) and group["betas"] == pytest.approx([0.0, 0.99 ** (16 / 17)])
    assert meta["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2e-4)
    hparams = (out / "hparams.yaml").read_text()
    assert "amp: none" in hparams and "compile: none" in hparams


def test_conditional_preset_is_the_papers_recipe():
    from ganaug.config import load_hparams

    hparams, _ = load_hparams("wavegan_conditional", {"data_folder": "x", "output_folder": "y"})
    paper = {"conditional": True, "model": "wavegan", "model_dim": 64, "num_samples": 16384, "latent_dim": 100,
             "phase_shuffle": 2, "loss": "wgan-gp", "gp_weight": 10.0, "d_steps_per_g_step": 5, "lr": 1e-4,
             "betas": [0.5, 0.9], "batch_size": 64, "amp": "none", "compile": "none", "gp_interval": 1,
             "diffaug": "", "aux_weight": 0.0, "ema_decay": 0.0, "stft_critic": False}
    assert {k: hparams[k] for k in paper} == paper


def test_nsgan_without_r1_warns_once(small, tmp_path):
    with pytest.warns(UserWarning, match="no regulariser") as caught:
        assert cli(["train", COND, *small, f"--output_folder={tmp_path / 'run'}", "--max_steps=1",
                    "--loss=hinge"]) == 0
    assert len([w for w in caught if "no regulariser" in str(w.message)]) == 1
