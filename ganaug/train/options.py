"""``TrainOptions``: every setting of one training run, one per line with its comment (the YAML keys).

Defaults are the WaveGAN paper's WGAN-GP training; every data-efficiency and speed option below
the first block defaults to today's behaviour (off), so an old YAML trains as it always did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["TrainOptions", "LOSSES", "AUX_KINDS", "COMPILE_MODES", "DIFFAUG_OPS"]

LOSSES = ("wgan-gp", "wgan-clip", "nsgan", "hinge")
AUX_KINDS = ("projection", "acgan", "frozen")
COMPILE_MODES = ("none", "default", "reduce-overhead")
DIFFAUG_OPS = ("shift", "gain", "cutout", "band")

# settings that make a resumed run a different run; the ones added after format 1 enter the
# signature only when they differ from their default, so older checkpoints still resume
_SIGNATURE = ("batch_size", "d_steps_per_g_step", "gp_weight", "lr", "betas", "ema_decay", "seed")
_SIGNATURE_IF_SET = ("loss", "r1_gamma", "gp_interval", "clip_value", "diffaug", "diffaug_p", "ada_target",
                     "ada_kimg", "stft_critic", "aux", "aux_weight", "aux_classifier")


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
    ckpt_interval_steps: int = 1000   # checkpoint + samples + spectrogram grid every N steps and at the end
    log_interval_steps: int = 50      # stats row (jsonl, TensorBoard, progress bar) every N steps
    keep_checkpoints: int = 3         # newest train_state folders kept on disk
    samples_per_label: int = 4        # clips per label written at each checkpoint
    seed: int = 0                     # seeds the device generator: batches, latents, GP mixing, phase shuffle, diffaug
    amp: str = "bf16"                 # autocast on CUDA: "bf16" or "none"; never on CPU
    tf32: bool = True                 # TF32 matmuls/convs on CUDA (flags restored after training)
    progress: bool = True             # tqdm bar on process 0
    tensorboard: bool = True          # TensorBoard event files next to stats.jsonl
    name: str = "train"               # progress bar label
    metadata: dict = field(default_factory=dict)   # extra entries for config.json (data fingerprint, keyword)
    # -- speed (issue 10) --------------------------------------------------------------------------
    compile: str = "none"             # torch.compile of the critic and generator steps: none|default|reduce-overhead
    gp_precision: str = "float32"     # gradient penalty's critic pass: float32, or bf16 (autocast, CUDA only)
    gp_interval: int = 1              # lazy penalty (GP or R1) every k critic steps, weight scaled by k
    # -- data-efficient training (issue 11) --------------------------------------------------------
    loss: str = "wgan-gp"             # wgan-gp | wgan-clip | nsgan | hinge
    r1_gamma: float = 0.0             # zero-centred R1 penalty on reals, gamma/2 E|grad D(x)|^2 (0 = off)
    clip_value: float = 0.01          # weight clipping bound of the critics (loss wgan-clip)
    diffaug: str = ""                 # differentiable augmentation before the critics: e.g. "shift,gain,cutout,band"
    diffaug_p: float = 1.0            # probability of each augmentation per clip (fixed p, ada_target = 0)
    ada_target: float = 0.0           # adaptive p (ADA): target of E[sign D(real)], e.g. 0.6; 0 = fixed p
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
            raise ValueError(f"amp={self.amp!r}: choose bf16 or none")
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
        if self.loss == "wgan-clip" and self.clip_value <= 0:
            raise ValueError("loss=wgan-clip needs clip_value > 0 (0.01 in Arjovsky et al. 2017)")

    def signature(self) -> dict:
        """Settings a resumed run must share with the saved one."""
        values, defaults = asdict(self), asdict(TrainOptions())
        out = {k: values[k] for k in _SIGNATURE}
        out.update({k: values[k] for k in _SIGNATURE_IF_SET if values[k] != defaults[k]})
        return out
