"""One training step, with no host synchronisation: ``GanStep.critic_step()`` and ``GanStep.generator_step()``.

Every random number of a step (batch indices, latents, the penalty's mixing ``eps``, phase-shuffle
shifts, augmentation choices) is drawn on the device from ONE seeded ``torch.Generator`` of that
device (a CPU run keeps bit-exact resume: the generator's state is saved in the training state). On
CUDA the clips live on the GPU, losses are summed on the device and read only at log intervals,
and nothing in a step waits for the GPU, so the host queues work ahead of it.

The maths lives in two pure functions of the drawn tensors, :meth:`GanStep.critic_losses` and
:meth:`GanStep.generator_losses`, which ``compile`` hands to ``torch.compile`` (``reduce-overhead``
also captures them as CUDA graphs). Losses are dicts of named terms (``"D/wgan"``, ``"D/gp"``,
``"D/r1"``, ``"D/stft"``, ``"D/aux"``, ``"D/loss"``, ``"G/adv"``, ``"G/stft"``, ``"G/aux"``).
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.functional import draw_shifts, sample_latents
from ganaug.train.diffaug import AdaptiveP, DiffAugment
from ganaug.train.losses import d_adversarial, g_adversarial, input_gradient_penalty
from ganaug.train.options import TrainOptions

__all__ = ["GanStep", "compile_step"]


def compile_step(fn, mode: str, backend: str = "inductor"):
    """``torch.compile(fn)`` for ``mode`` ``default``/``reduce-overhead``, tracing ``autograd.grad`` in-graph
    (the penalties differentiate the critic twice)."""
    compiled = torch.compile(fn, mode=None if mode == "default" else mode, backend=backend)
    cudagraphs = mode == "reduce-overhead"

    def run(*args, **kwargs):
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            return compiled(*args, **kwargs)

    return run


class GanStep:
    """The networks, optimizers and random streams of a run, and its two updates.

    Args:
        G, D: generator and critic (on ``device``, trainable).
        opts: the run's :class:`TrainOptions`.
        data: real clips ``(N, num_samples)`` (on the device for CUDA runs; a CPU tensor otherwise).
        data_labels: ``(N,)`` label indices (conditional) or ``None``.
        batch: clips per step on this process.
        seed: seed of the device generator.
        dist: the process group (gradient averaging).
        aux_classifier: the frozen classifier folder for ``aux: frozen``.
        compile_backend: torch.compile backend (``inductor``; tests use ``aot_eager``).
    """

    def __init__(self, G, D, opts: TrainOptions, device, data: torch.Tensor, data_labels, batch: int, seed: int,
                 dist=None, aux_classifier: str | Path | None = None, compile_backend: str = "inductor"):
        from ganaug.train.distributed import Dist

        self.G, self.D, self.opts, self.device = G, D, opts, torch.device(device)
        self.data, self.data_labels, self.batch = data, data_labels, batch
        self.dist = dist or Dist()
        self.conditional = G.label_names is not None
        cuda = self.device.type == "cuda"
        if opts.gp_precision == "bf16" and not cuda:
            raise ValueError("gp_precision=bf16 runs the penalty under CUDA bf16 autocast; on CPU use "
                             "gp_precision=float32")
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda and opts.amp == "bf16" \
            else contextlib.nullcontext
        self.gp_autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if opts.gp_precision == "bf16" \
            else None
        self.gen = torch.Generator(self.device).manual_seed(seed)
        self.shift_n = int(getattr(D, "phase_shuffle", 0) or 0)
        self.shift_layers = int(getattr(D, "shuffle_layers", 0) or 0) if self.shift_n else 0

        # -- the critics beside D, and the auxiliary classifier -------------------------------------------
        self.stft = None
        if opts.stft_critic:
            if G.family != "wavegan":
                raise ValueError(f"stft_critic=true needs a waveform generator; {G.family} critics see spectrograms")
            from ganaug.models.stft_critic import MultiResolutionSTFTCritic

            with torch.random.fork_rng(devices=[]):   # its init leaves every random stream untouched
                torch.random.default_generator.manual_seed(seed + 1)
                self.stft = MultiResolutionSTFTCritic(G.label_names, channels=max(4, getattr(D, "model_dim", 64) // 4))
            self.stft.to(self.device).train()
        self.aux_kind = opts.aux if opts.aux_weight > 0 else None
        self.aux_head = self.classifier = None
        if self.aux_kind is not None:
            if not self.conditional:
                raise ValueError("aux_weight > 0 needs a conditional run (conditional: True)")
            if self.aux_kind in ("projection", "acgan") and not (hasattr(D, "features") and hasattr(D, "head")):
                raise ValueError(f"aux={self.aux_kind} needs a critic with features()/head() (WaveGAN's)")
            if self.aux_kind == "acgan":
                with torch.random.fork_rng(devices=[]):
                    torch.random.default_generator.manual_seed(seed + 2)
                    self.aux_head = nn.Linear(D.feature_dim, len(G.label_names)).to(self.device)
            if self.aux_kind == "frozen":
                self.classifier, self.classifier_index = _frozen_classifier(aux_classifier, G, self.device)
        self.critics = nn.ModuleList([m for m in (D, self.stft, self.aux_head) if m is not None])

        # -- optimizers: fused Adam on CUDA, foreach on CPU -----------------------------------------------
        kind = {"fused": True} if cuda else {"foreach": True}
        self.opt_G = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas, **kind)
        self.opt_D = torch.optim.Adam(self.critics.parameters(), lr=opts.lr, betas=opts.betas, **kind)
        self.ema = copy.deepcopy(G).requires_grad_(False) if opts.ema_decay else None
        if opts.diffaug and G.family != "wavegan":
            raise ValueError(f"diffaug={opts.diffaug!r} augments waveforms; {G.family} critics see spectrograms")
        self.diffaug = DiffAugment(opts.diffaug, G.num_samples) if opts.diffaug else None
        self.ada = AdaptiveP(opts.ada_target, opts.ada_kimg, self.device, reduce=self.dist.sum_) if opts.ada_target \
            else None
        self.fixed_p = torch.tensor(opts.diffaug_p, device=self.device)
        self.critic_steps = 0                 # critic updates so far: picks the lazy-penalty steps
        self.totals: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self._d_fn, self._g_fn = self.critic_losses, self.generator_losses
        if opts.compile != "none":
            self._d_fn = compile_step(self.critic_losses, opts.compile, compile_backend)
            self._g_fn = compile_step(self.generator_losses, opts.compile, compile_backend)

    # -- random draws (eager, on the device generator) ---------------------------------------------------
    @property
    def p(self) -> torch.Tensor:
        """The augmentation probability now (a device tensor)."""
        return self.ada.p if self.ada is not None else self.fixed_p

    def _shifts(self, n: int):
        if not self.shift_layers:
            return None
        return draw_shifts(self.shift_n, (self.shift_layers, n), self.gen, self.device)

    def _labels(self, n: int):
        """Labels drawn with the data's label frequencies (a random clip's label; no audio read)."""
        if not self.conditional:
            return None
        index = torch.randint(len(self.data_labels), (n,), generator=self.gen, device=self.gen.device)
        return self.data_labels[index.to(self.data_labels.device)].to(self.device)

    def draw_critic_batch(self, regularize: bool) -> dict:
        """Everything random in one critic update: real clips, labels, latents, eps, shifts, augmentation."""
        n, gen = self.batch, self.gen
        index = torch.randint(len(self.data), (n,), generator=gen, device=gen.device)
        real = self.G.encode(self.data[index.to(self.data.device)].to(self.device, non_blocking=True))
        y = self.data_labels[index.to(self.data_labels.device)].to(self.device) if self.conditional else None
        z = sample_latents(n, self.G.latent_dim, gen, self.device)
        eps = torch.rand(n, generator=gen, device=gen.device).to(self.device)
        batch = {"real": real, "y": y, "z": z, "eps": eps, "shifts": self._shifts(2 * n)}
        if self.diffaug is not None:
            batch["aug"] = self.diffaug.draw(2 * n, self.p, gen, self.device)
        if regularize:
            shape = (n,) + tuple(real.shape[1:])
            if self.opts.loss == "wgan-gp":
                batch["gp_shifts"] = self._shifts(n)
                batch["gp_probe"] = torch.zeros(shape, device=self.device, requires_grad=True)
            if self.opts.r1_gamma:
                batch["r1_shifts"] = self._shifts(n)
                batch["r1_probe"] = torch.zeros(shape, device=self.device, requires_grad=True)
            if self.stft is not None:
                batch["stft_probe"] = torch.zeros(shape, device=self.device, requires_grad=True)
        return batch

    def draw_generator_batch(self) -> dict:
        n = self.batch
        batch = {"y": self._labels(n), "z": sample_latents(n, self.G.latent_dim, self.gen, self.device),
                 "shifts": self._shifts(n)}
        if self.diffaug is not None:
            batch["aug"] = self.diffaug.draw(n, self.p, self.gen, self.device)
        return batch

    # -- the maths: pure functions of the draws ----------------------------------------------------------
    def _scores(self, x, y, shifts, logits: bool):
        """``(scores, class logits or None)`` of the waveform critic."""
        D = self.D
        if not logits:
            return (D(x, y) if shifts is None else D(x, y, shifts=shifts)), None
        h = D.features(x, shifts)
        cls = h @ D.embed.weight.t() if self.aux_kind == "projection" else self.aux_head(h)
        return D.head(h, y), cls

    def critic_losses(self, batch: dict, regularize: bool) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """``(loss, named terms, D's scores on the real clips)`` of one critic update."""
        opts, n = self.opts, self.batch
        real, y = batch["real"], batch["y"]
        with torch.no_grad(), self.autocast():
            fake = self.G(batch["z"], y)
        x = torch.cat([real.float(), fake.float()])
        yy = torch.cat([y, y]) if y is not None else None
        if self.diffaug is not None:
            x = self.diffaug.apply(x, batch["aug"])
        class_logits = self.aux_kind in ("projection", "acgan")
        with self.autocast():
            scores, logits = self._scores(x, yy, batch["shifts"], class_logits)
        real_s, fake_s = scores.float()[:n], scores.float()[n:]
        name, loss = d_adversarial(opts.loss, real_s, fake_s)
        terms = {f"D/{name}": loss}
        if class_logits:
            terms["D/aux"] = F.cross_entropy(logits.float()[:n], y)
            loss = loss + opts.aux_weight * terms["D/aux"]
        stft_loss = None
        if self.stft is not None:
            with self.autocast():
                s = self.stft(x, yy).float()
            stft_loss = d_adversarial(opts.loss, s[:n], s[n:])[1]
        if regularize:
            k = opts.gp_interval
            x_real, x_fake = x[:n].detach(), x[n:].detach()
            if opts.loss == "wgan-gp":
                eps = batch["eps"].view((-1,) + (1,) * (real.dim() - 1))
                x_hat = eps * x_real + (1 - eps) * x_fake
                terms["D/gp"] = input_gradient_penalty(self.D, x_hat, batch["gp_probe"], y, 1.0, batch["gp_shifts"],
                                                       self.gp_autocast)
                loss = loss + opts.gp_weight * k * terms["D/gp"]
                if self.stft is not None:
                    gp = input_gradient_penalty(self.stft, x_hat, batch["stft_probe"], y, 1.0, None, self.gp_autocast)
                    stft_loss = stft_loss + opts.gp_weight * k * gp
            if opts.r1_gamma:
                terms["D/r1"] = input_gradient_penalty(self.D, x_real, batch["r1_probe"], y, 0.0, batch["r1_shifts"],
                                                       self.gp_autocast)
                loss = loss + opts.r1_gamma / 2 * k * terms["D/r1"]
                if self.stft is not None and opts.loss != "wgan-gp":
                    r1 = input_gradient_penalty(self.stft, x_real, batch["stft_probe"], y, 0.0, None, self.gp_autocast)
                    stft_loss = stft_loss + opts.r1_gamma / 2 * k * r1
        if stft_loss is not None:
            terms["D/stft"] = stft_loss
            loss = loss + stft_loss
        terms["D/loss"] = loss
        return loss, terms, real_s

    def generator_losses(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """``(loss, named terms)`` of one generator update."""
        opts, y = self.opts, batch["y"]
        with self.autocast():
            fake = self.G(batch["z"], y)
        x = fake if self.diffaug is None else self.diffaug.apply(fake, batch["aug"])
        class_logits = self.aux_kind in ("projection", "acgan")
        with self.autocast():
            scores, logits = self._scores(x, y, batch["shifts"], class_logits)
        loss = g_adversarial(opts.loss, scores.float())
        terms = {"G/adv": loss}
        if self.stft is not None:
            with self.autocast():
                terms["G/stft"] = g_adversarial(opts.loss, self.stft(x, y).float())
            loss = loss + terms["G/stft"]
        if class_logits:
            terms["G/aux"] = F.cross_entropy(logits.float(), y)
        elif self.aux_kind == "frozen":
            terms["G/aux"] = F.cross_entropy(self.classifier(fake.float()), self.classifier_index[y])
        if "G/aux" in terms:
            loss = loss + opts.aux_weight * terms["G/aux"]
        return loss, terms

    # -- the updates ----------------------------------------------------------------------------------
    def critic_step(self) -> None:
        """One critic update (GP/R1 on every ``gp_interval``-th)."""
        regularize = self.critic_steps % self.opts.gp_interval == 0
        batch = self.draw_critic_batch(regularize)
        loss, terms, real_s = self._d_fn(batch, regularize)
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.critics)
        self.opt_D.step()
        if self.opts.loss == "wgan-clip":
            with torch.no_grad():
                params = [p for p in self.critics.parameters()]
                torch._foreach_clamp_min_(params, -self.opts.clip_value)
                torch._foreach_clamp_max_(params, self.opts.clip_value)
        if self.ada is not None:
            self.ada.observe(real_s)
        self.critic_steps += 1
        self._add(terms)

    def generator_step(self) -> None:
        """One generator update, then the EMA."""
        batch = self.draw_generator_batch()
        self.critics.requires_grad_(False)
        loss, terms = self._g_fn(batch)
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.G)
        self.opt_G.step()
        self.critics.requires_grad_(True)
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.parameters()), list(self.G.parameters()), 1 - self.opts.ema_decay)
                for b_ema, b in zip(self.ema.buffers(), self.G.buffers()):
                    b_ema.copy_(b)
        self._add(terms)

    def _add(self, terms: dict) -> None:
        for key, value in terms.items():
            value = value.detach().float()
            self.totals[key] = self.totals[key] + value if key in self.totals else value.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop_stats(self) -> dict[str, torch.Tensor]:
        """Mean of each term since the last call (device tensors; reading them is the caller's sync)."""
        out = {k: v / self.counts[k] for k, v in self.totals.items()}
        if self.ada is not None:
            out["aug/p"] = self.ada.p.clone()
        self.totals, self.counts = {}, {}
        return out

    # -- what the training state holds beyond G, D and the optimizers ------------------------------------
    def extra_modules(self) -> dict[str, nn.Module]:
        """Modules saved in the training state under their prefix (never in the exported generator)."""
        out = {}
        if self.stft is not None:
            out["D_stft"] = self.stft
        if self.aux_head is not None:
            out["D_aux"] = self.aux_head
        return out

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return self.ada.state() if self.ada is not None else {}

    def load_extra(self, tensors: dict) -> None:
        from ganaug.train.state import unprefixed

        for prefix, module in self.extra_modules().items():
            module.load_state_dict(unprefixed(prefix, tensors))
        if self.ada is not None:
            self.ada.load(tensors)


def _frozen_classifier(folder, G, device):
    """The frozen classifier of ``aux: frozen`` and the map from G's label indices to its logits."""
    from ganaug.models.classifier import is_classifier, load_classifier

    if not folder or not is_classifier(folder):
        raise ValueError(f"aux=frozen: no classifier at {folder or '(none given)'}; train one (ganaug kws, or the "
                         f"reference classifier ganaug evaluate trains) and give --aux_classifier=DIR")
    clf = load_classifier(folder, device=device).eval().requires_grad_(False)
    if clf.sample_rate != G.sample_rate:
        raise ValueError(f"aux_classifier={folder}: classifier at {clf.sample_rate} Hz, generator at {G.sample_rate} Hz")
    missing = [n for n in G.label_names if n not in clf.label_names]
    if missing:
        raise ValueError(f"aux_classifier={folder}: does not know labels {missing} (it knows {clf.label_names})")
    index = torch.tensor([clf.label_names.index(n) for n in G.label_names], device=device)
    return clf, index
