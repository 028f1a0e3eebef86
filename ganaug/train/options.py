"""``TrainOptions``: every setting of one training run, one per line with its comment (the YAML keys).

Defaults are the WaveGAN paper's WGAN-GP training in float32, eager; every data-efficiency and speed
option below the first block is off by default. Only sound combinations pass ``__post_init__``: a
combination that cannot work is a ``ValueError`` naming the keys and the fix, one that does nothing
useful is a warning. :func:`check_for_model` adds the checks that need the model family.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

__all__ = ["TrainOptions", "LOSSES", "AUX_KINDS", "COMPILE_MODES", "DIFFAUG_OPS", "check_for_model"]

LOSSES = ("wgan-gp", "wgan-clip", "nsgan", "hinge")
AUX_KINDS = ("projection", "acgan", "frozen")
COMPILE_MODES = ("none", "default", "reduce-overhead")
DIFFAUG_OPS = ("shift", "gain", "cutout", "band")

# settings that make a resumed run a different run; the ones added after format 1 enter the
# signature only when they differ from their default, so older checkpoints still resume
_SIGNATURE = ("batch_size", "d_steps_per_g_step", "gp_weight", "lr", "betas", "ema_decay", "seed")
_SIGNATURE_IF_SET = ("loss", "r1_gamma", "gp_interval", "clip_value", "diffaug", "diffaug_p", "ada_target",
                     "ada_kimg", "stft_critic", "aux", "aux_weight", "aux_classifier", "ema_rampup")


@dataclass
class TrainOptions:
    """Options of one training run; defaults are the WaveGAN paper's."""

    max_steps: int = 100_000          # generator updates to train for (a rerun resumes up to this)
    batch_size: int = 64              # global batch; split evenly across torchrun processes
    d_steps_per_g_step: int = 5       # critic updates per generator update
    gp_weight: float = 10.0           # lambda of the gradient penalty (loss wgan-gp)
    lr: float = 1e-4                  # Adam learning rate of G and D
    betas: tuple = (0.5, 0.9)         # Adam betas of G and D
    ema_decay: float = 0.0            # EMA of G's weights, 0 = off; exported weights are the EMA when on
    ema_rampup: float = 0.05          # EMA half-life at most ema_rampup x steps so far (StyleGAN2-ADA; 0 = off)
    ckpt_interval_steps: int = 1000   # checkpoint + samples + spectrogram grid every N steps and at the end
    log_interval_steps: int = 50      # stats row (jsonl, TensorBoard, progress bar) every N steps
    keep_checkpoints: int = 3         # newest train_state folders kept on disk
    samples_per_label: int = 4        # clips per label written at each checkpoint
    seed: int = 0                     # seeds the device generator: batches, latents, GP mixing, phase shuffle, diffaug
    amp: str = "none"                 # "bf16": autocast of G and D forwards on CUDA (opt-in; a CPU run warns, float32)
    tf32: bool = True                 # TF32 matmuls/convs on CUDA (flags restored after training)
    progress: bool = True             # tqdm bar on process 0
    tensorboard: bool = True          # TensorBoard event files next to stats.jsonl
    name: str = "train"               # progress bar label
    metadata: dict = field(default_factory=dict)   # extra entries for config.json (data fingerprint, keyword)
    # -- speed (issue 10) --------------------------------------------------------------------------
    compile: str = "none"             # torch.compile of G's forward and D's scoring (opt-in): none|default|reduce-overhead
    gp_precision: str = "float32"     # gradient penalty's critic pass: float32, or bf16 (autocast, CUDA only)
    gp_interval: int = 1              # lazy R1 every k critic steps (StyleGAN2: 16): its own pass, weight x k, D's Adam
                                      # lr x k/(k+1) and betas ^ k/(k+1); R1 only (WGAN-GP's penalty is its constraint)
    # -- data-efficient training (issue 11) --------------------------------------------------------
    loss: str = "wgan-gp"             # wgan-gp | wgan-clip | nsgan | hinge
    r1_gamma: float = 0.0             # zero-centred R1 penalty on reals, gamma/2 E|grad D(x)|^2 (0 = off)
    clip_value: float = 0.01          # weight clipping bound of the critics' own weights (wgan-clip: RMSProp, as published)
    diffaug: str = ""                 # differentiable augmentation before the critics: e.g. "shift,gain,cutout,band"
    diffaug_p: float = 1.0            # probability of each augmentation per clip (fixed p, ada_target = 0)
    ada_target: float = 0.0           # adaptive p (ADA; loss nsgan or hinge): target of E[sign D(real)], e.g. 0.6
    ada_kimg: float = 100.0           # ADA speed: real clips (thousands) for p to move from 0 to 1
    stft_critic: bool = False         # multi-resolution STFT critic beside the waveform critic (waveform families)
    aux_weight: float = 0.0           # weight of the auxiliary classification loss (0 = off; conditional only)
    aux: str = "projection"           # projection (class logits from the projection embedding) | acgan | frozen
    aux_classifier: str = ""          # aux frozen: classifier folder ("" = the reference classifier of the data)

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        for key in ("max_steps", "batch_size", "d_steps_per_g_step", "ckpt_interval_steps",
                    "log_interval_steps", "keep_checkpoints", "gp_interval"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r}: must be a positive integer")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}: must be in [0, 1) (0 = off, 0.999 is typical)")
        if self.amp not in ("bf16", "none"):
            raise ValueError(f"amp={self.amp!r}: choose none or bf16")
        if self.lr <= 0 or self.gp_weight < 0 or len(self.betas) != 2:
            raise ValueError(f"lr={self.lr}, gp_weight={self.gp_weight}, betas={self.betas}: need lr > 0, "
                             f"gp_weight >= 0 and two betas")
        choices = (("compile", COMPILE_MODES), ("gp_precision", ("float32", "bf16")), ("loss", LOSSES),
                   ("aux", AUX_KINDS))
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r}: choose one of {'|'.join(allowed)}")
        for key in ("r1_gamma", "aux_weight", "ada_target", "clip_value"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 0")
        if self.diffaug is None:
            self.diffaug = ""
        ops = [op.strip() for op in str(self.diffaug).split(",") if op.strip()]
        unknown = [op for op in ops if op not in DIFFAUG_OPS]
        if unknown:
            raise ValueError(f"diffaug={self.diffaug!r}: unknown {unknown}; choose from {','.join(DIFFAUG_OPS)}")
        self.diffaug = ",".join(ops)
        if not 0.0 <= self.diffaug_p <= 1.0 or not 0.0 <= self.ada_target < 1.0 or self.ada_kimg <= 0:
            raise ValueError(f"diffaug_p={self.diffaug_p}, ada_target={self.ada_target}, ada_kimg={self.ada_kimg}: "
                             f"need 0 <= diffaug_p <= 1, 0 <= ada_target < 1 (e.g. 0.6) and ada_kimg > 0")
        if self.ada_target and not self.diffaug:
            raise ValueError(f"ada_target={self.ada_target} adapts the strength of diffaug, which is off: "
                             f"give e.g. --diffaug=shift,gain,cutout")
        if self.ema_rampup < 0:
            raise ValueError(f"ema_rampup={self.ema_rampup}: must be >= 0 (0.05 in StyleGAN2-ADA; 0 = no ramp-up)")
        self._check_combinations()

    def _check_combinations(self) -> None:
        """The options that only make sense together (issue 22): errors for what cannot work, warnings for no-ops."""
        wgan = self.loss in ("wgan-gp", "wgan-clip")
        if self.ada_target and wgan:
            raise ValueError(f"ada_target={self.ada_target} with loss={self.loss}: ADA's signal E[sign D(real)] needs "
                             f"scores centred on 0 and a WGAN critic has no fixed zero; use --loss=nsgan or "
                             f"--loss=hinge, or a fixed --diffaug_p with ada_target=0")
        if self.gp_interval > 1 and (wgan or not self.r1_gamma):
            raise ValueError(f"gp_interval={self.gp_interval} with loss={self.loss}, r1_gamma={self.r1_gamma}: lazy "
                             f"regularisation is for R1 on an nsgan/hinge critic (StyleGAN2); WGAN-GP's penalty is "
                             f"its constraint and runs every step: use gp_interval=1, or --loss=nsgan --r1_gamma=1")
        if self.loss == "wgan-clip" and self.clip_value <= 0:
            raise ValueError("loss=wgan-clip needs clip_value > 0 (0.01 in Arjovsky et al. 2017)")
        if self.loss in ("nsgan", "hinge") and not self.r1_gamma:
            warnings.warn(f"loss={self.loss} with r1_gamma=0 trains the critic with no regulariser; StyleGAN2 uses "
                          f"R1 (e.g. --r1_gamma=1.0)", UserWarning, stacklevel=3)

    def signature(self) -> dict:
        """Settings a resumed run must share with the saved one."""
        values, defaults = asdict(self), asdict(TrainOptions())
        out = {k: values[k] for k in _SIGNATURE}
        out.update({k: values[k] for k in _SIGNATURE_IF_SET if values[k] != defaults[k]})
        return out


def check_for_model(opts: TrainOptions, family: str, conditional: bool) -> None:
    """The options that need a conditional run, or a waveform critic with ``features``/``head`` (WaveGAN's)."""
    if opts.aux_weight and not conditional:
        raise ValueError("aux_weight > 0 needs a conditional run (conditional: True)")
    if family == "wavegan":
        return
    if opts.diffaug:
        raise ValueError(f"diffaug={opts.diffaug!r} augments waveforms; {family} critics see spectrograms")
    if opts.stft_critic:
        raise ValueError(f"stft_critic=True needs a waveform generator; {family} critics see spectrograms")
    if opts.aux_weight and opts.aux in ("projection", "acgan"):
        raise ValueError(f"aux={opts.aux} reads class logits from WaveGAN's critic features; with model={family} "
                         f"use --aux=frozen or aux_weight=0")
