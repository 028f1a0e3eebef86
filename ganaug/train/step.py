"""One training step, with no host synchronisation: ``GanStep.critic_step()`` and ``GanStep.generator_step()``.

Every random number of a step (batch indices, latents, the penalty's mixing ``eps``, phase-shuffle
shifts, augmentation choices) is drawn on the device from ONE seeded ``torch.Generator`` of that
device (a CPU run keeps bit-exact resume: the generator's state is saved in the training state). On
CUDA the clips live on the GPU, losses are summed on the device and read only at log intervals,
and nothing in a step waits for the GPU, so the host queues work ahead of it.

The step composes parts that live elsewhere: the losses (pure functions, :mod:`ganaug.train.losses`),
the augmentation with its ``p`` (:class:`~ganaug.train.diffaug.AugmentPipe`), the generator's average
(:class:`~ganaug.train.ema.EMA`) and ``torch.compile`` with its eager fall-back
(:mod:`ganaug.train.compiled`). Its phases are StyleGAN2-ADA's: the critic's main pass with its
penalties (WGAN-GP, or R1 when ``gp_interval`` is 1), or the main pass plus a separate R1 pass every
``gp_interval`` critic steps (lazy regularisation); then the generator's pass and the EMA. Losses are
dicts of named terms (``"D/wgan"``, ``"D/gp"``, ``"D/r1"``, ``"D/stft"``, ``"D/stft_gp"``, ``"D/stft_r1"``,
``"D/aux"``, ``"D/loss"``, ``"G/adv"``, ``"G/stft"``, ``"G/aux"``).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch
from torch import nn

from ganaug.functional import draw_shifts, sample_latents
from ganaug.train import losses as L
from ganaug.train.compiled import maybe_compile
from ganaug.train.diffaug import AugmentPipe
from ganaug.train.ema import EMA
from ganaug.train.options import TrainOptions, check_for_model
from ganaug.train.state import flatten_optimizer, prefixed, unflatten_optimizer, unprefixed

__all__ = ["GanStep"]


class GanStep:
    """The networks, optimizers and random stream of a run, and its two updates.

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

        check_for_model(opts, G.family, G.label_names is not None)
        self.G, self.D, self.opts, self.device = G, D, opts, torch.device(device)
        self.data, self.data_labels, self.batch = data, data_labels, batch
        self.dist = dist or Dist()
        self.conditional = G.label_names is not None
        self.autocast, self.penalty_autocast = _autocasts(opts, self.device)
        self.gen = torch.Generator(self.device).manual_seed(seed)
        self.shift_n = int(getattr(D, "phase_shuffle", 0) or 0)
        self.shift_layers = int(getattr(D, "shuffle_layers", 0) or 0) if self.shift_n else 0
        self.aux_kind = opts.aux if opts.aux_weight > 0 else None
        self.class_logits = self.aux_kind in ("projection", "acgan")
        self.stft, self.aux_head, self.classifier, self.classifier_index = _extra_critics(
            G, D, opts, seed, self.device, aux_classifier)
        self.critics = nn.ModuleList([m for m in (D, self.stft, self.aux_head) if m is not None])
        self.opt_G, self.opt_D = _optimizers(opts, G, self.critics, self.device.type == "cuda")
        self.ema = EMA(G, opts.ema_decay, opts.ema_rampup) if opts.ema_decay else None
        self.augment = AugmentPipe(opts.diffaug, G.num_samples, self.device, opts.diffaug_p, opts.ada_target,
                                   opts.ada_kimg, reduce=self.dist.sum_) if opts.diffaug else None
        self.lazy = opts.gp_interval > 1          # R1 in its own pass every gp_interval critic steps
        self.g_forward = maybe_compile(G, "the generator's forward", opts.compile, compile_backend)
        self.d_scores = maybe_compile(self.scores, "the critic's scoring pass", opts.compile, compile_backend)
        self.critic_steps = 0                     # critic updates so far: picks the lazy-penalty steps
        self.steps = 0                            # generator updates so far: the EMA's ramp-up
        self.totals: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    @property
    def exported(self) -> nn.Module:
        """The generator a checkpoint exports: the EMA when on, else G."""
        return self.ema.module if self.ema is not None else self.G

    # -- random draws (eager, on the device generator) ---------------------------------------------------
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
        """Everything random in one critic update: real clips, labels, latents, eps, shifts, augmentation,
        and with ``regularize`` the penalties' shifts and probes (zero tensors the input gradient is taken at)."""
        n, gen = self.batch, self.gen
        index = torch.randint(len(self.data), (n,), generator=gen, device=gen.device)
        real = self.G.encode(self.data[index.to(self.data.device)].to(self.device, non_blocking=True))
        y = self.data_labels[index.to(self.data_labels.device)].to(self.device) if self.conditional else None
        z = sample_latents(n, self.G.latent_dim, gen, self.device)
        eps = torch.rand(n, generator=gen, device=gen.device).to(self.device)
        batch = {"real": real, "y": y, "z": z, "eps": eps, "shifts": self._shifts(2 * n)}
        if self.augment is not None:
            batch["aug"] = self.augment.draw(2 * n, gen, self.device)
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
        if self.augment is not None:
            batch["aug"] = self.augment.draw(n, self.gen, self.device)
        return batch

    # -- the maths: functions of the draws ---------------------------------------------------------------
    def scores(self, x, y, shifts):
        """``(scores, class logits or None)`` of the critic D on ``x`` (the pass ``compile`` compiles)."""
        D = self.D
        if not self.class_logits:
            return (D(x, y) if shifts is None else D(x, y, shifts=shifts)), None
        h = D.features(x, shifts)
        logits = h @ D.embed.weight.t() if self.aux_kind == "projection" else self.aux_head(h)
        return D.head(h, y), logits

    def _penalty(self, penalty, critic, x, probe, y, shifts=None) -> torch.Tensor:
        """``penalty`` (a function of input gradients) of ``critic`` at ``x``, eager (double backward);
        for a multi-resolution critic, the sum of each resolution's penalty."""
        point = x.detach().float() + probe
        with self.penalty_autocast():
            out = critic(point, y) if shifts is None else critic(point, y, shifts=shifts)
        rows = out.float() if out.dim() > 1 else out.float().unsqueeze(0)
        return sum(penalty(L.input_gradient(row, probe)) for row in rows)

    def penalties(self, x_real, x_fake, batch: dict, scale: float = 1.0) -> tuple[torch.Tensor, dict]:
        """``(weighted sum, raw terms)`` of the penalties due: WGAN-GP at interpolates, R1 at reals (its
        weight ``r1_gamma / 2`` times ``scale``, the lazy interval in the separate R1 pass)."""
        opts, y = self.opts, batch["y"]
        total, terms = 0.0, {}
        if opts.loss == "wgan-gp":
            x_hat = L.interpolate(x_real, x_fake, batch["eps"])
            terms["D/gp"] = self._penalty(L.gradient_penalty, self.D, x_hat, batch["gp_probe"], y, batch["gp_shifts"])
            total = total + opts.gp_weight * terms["D/gp"]
            if self.stft is not None:
                terms["D/stft_gp"] = self._penalty(L.gradient_penalty, self.stft, x_hat, batch["stft_probe"], y)
                total = total + opts.gp_weight * terms["D/stft_gp"]
        if opts.r1_gamma:
            terms["D/r1"] = self._penalty(L.r1_penalty, self.D, x_real, batch["r1_probe"], y, batch["r1_shifts"])
            total = total + opts.r1_gamma / 2 * scale * terms["D/r1"]
            if self.stft is not None and opts.loss != "wgan-gp":
                terms["D/stft_r1"] = self._penalty(L.r1_penalty, self.stft, x_real, batch["stft_probe"], y)
                total = total + opts.r1_gamma / 2 * scale * terms["D/stft_r1"]
        return total, terms

    def critic_losses(self, batch: dict, penalties: bool) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """``(loss, named terms, D's scores on the real clips)`` of the critic's main pass."""
        opts, n = self.opts, self.batch
        real, y = batch["real"], batch["y"]
        with torch.no_grad(), self.autocast():
            fake = self.g_forward(batch["z"], y)
        x = torch.cat([real.float(), fake.float()])
        yy = torch.cat([y, y]) if y is not None else None
        if self.augment is not None:
            x = self.augment.apply(x, batch["aug"])
        with self.autocast():
            scores, logits = self.d_scores(x, yy, batch["shifts"])
        real_s, fake_s = scores.float()[:n], scores.float()[n:]
        name, loss = L.critic_loss(opts.loss, real_s, fake_s)
        terms = {f"D/{name}": loss}
        if logits is not None:                     # the class head learns on real clips (AC-GAN)
            terms["D/aux"] = L.class_loss(logits[:n], y)
            loss = loss + opts.aux_weight * terms["D/aux"]
        if self.stft is not None:                  # one loss per resolution, added
            with self.autocast():
                s = self.stft(x, yy).float()
            terms["D/stft"] = sum(L.critic_loss(opts.loss, r[:n], r[n:])[1] for r in s)
            loss = loss + terms["D/stft"]
        if penalties:
            weighted, raw = self.penalties(x[:n], x[n:], batch)
            terms.update(raw)
            loss = loss + weighted
        terms["D/loss"] = loss
        return loss, terms, real_s

    def regularization_losses(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """The lazy R1 pass: R1 at the (augmented) real clips of ``batch``, weighted ``gp_interval`` times."""
        x_real = batch["real"].float()
        if self.augment is not None:
            x_real = self.augment.apply(x_real, {k: v[:self.batch] for k, v in batch["aug"].items()})
        return self.penalties(x_real, None, batch, scale=self.opts.gp_interval)

    def generator_losses(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """``(loss, named terms)`` of one generator update."""
        opts, y = self.opts, batch["y"]
        with self.autocast():
            fake = self.g_forward(batch["z"], y)
        x = fake if self.augment is None else self.augment.apply(fake, batch["aug"])
        with self.autocast():
            scores, logits = self.d_scores(x, y, batch["shifts"])
        loss = L.generator_loss(opts.loss, scores.float())
        terms = {"G/adv": loss}
        if self.stft is not None:
            with self.autocast():
                s = self.stft(x, y).float()
            terms["G/stft"] = sum(L.generator_loss(opts.loss, r) for r in s)
            loss = loss + terms["G/stft"]
        if logits is not None:
            terms["G/aux"] = L.class_loss(logits, y)
        elif self.aux_kind == "frozen":
            terms["G/aux"] = L.class_loss(self.classifier(fake.float()), self.classifier_index[y])
        if "G/aux" in terms:
            loss = loss + opts.aux_weight * terms["G/aux"]
        return loss, terms

    # -- the updates ----------------------------------------------------------------------------------
    def _update(self, optimizer, module: nn.Module, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(module)
        optimizer.step()

    def _mark_step(self) -> None:
        if self.opts.compile == "reduce-overhead":   # a new iteration of the CUDA graphs
            torch.compiler.cudagraph_mark_step_begin()

    def critic_step(self) -> None:
        """One critic update (with its penalties), then the lazy R1 pass when due."""
        self._mark_step()
        due = self.critic_steps % self.opts.gp_interval == 0
        batch = self.draw_critic_batch(regularize=due)
        loss, terms, real_s = self.critic_losses(batch, penalties=due and not self.lazy)
        self._update(self.opt_D, self.critics, loss)
        if self.opts.loss == "wgan-clip":          # the critics' own weights, not the class head
            with torch.no_grad():
                params = [p for m in (self.D, self.stft) if m is not None for p in m.parameters()]
                torch._foreach_clamp_min_(params, -self.opts.clip_value)
                torch._foreach_clamp_max_(params, self.opts.clip_value)
        if self.augment is not None:
            self.augment.observe(real_s)
        if due and self.lazy:
            reg, reg_terms = self.regularization_losses(batch)
            self._update(self.opt_D, self.critics, reg)
            terms.update(reg_terms)
        self.critic_steps += 1
        self._add(terms)

    def generator_step(self) -> None:
        """One generator update, then the EMA."""
        self._mark_step()
        batch = self.draw_generator_batch()
        self.critics.requires_grad_(False)
        loss, terms = self.generator_losses(batch)
        self._update(self.opt_G, self.G, loss)
        self.critics.requires_grad_(True)
        if self.ema is not None:
            self.ema.update(self.G, self.steps)
        self.steps += 1
        self._add(terms)

    def _add(self, terms: dict) -> None:
        for key, value in terms.items():
            value = value.detach().float()
            self.totals[key] = self.totals[key] + value if key in self.totals else value.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop_stats(self) -> dict[str, torch.Tensor]:
        """Mean of each term since the last call (device tensors; reading them is the caller's sync)."""
        out = {k: v / self.counts[k] for k, v in self.totals.items()}
        if self.augment is not None and self.augment.adaptive:
            out["aug/p"] = self.augment.p.clone()
        self.totals, self.counts = {}, {}
        return out

    # -- the training state: everything resume needs beyond the RNG ----------------------------------------
    def extra_modules(self) -> dict[str, nn.Module]:
        """Modules saved under their prefix in the training state, never in the exported generator."""
        out = {"D_stft": self.stft, "D_aux": self.aux_head}
        return {k: m for k, m in out.items() if m is not None}

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """``(tensors, meta)``: G, D, the extra critics, the EMA, the augmentation's state and both optimizers
        (flattened: tensors here, ``meta["opt_G"]``/``meta["opt_D"]`` JSON)."""
        tensors = {**prefixed("G", self.G.state_dict()), **prefixed("D", self.D.state_dict())}
        for prefix, module in self.extra_modules().items():
            tensors.update(prefixed(prefix, module.state_dict()))
        if self.ema is not None:
            tensors.update(prefixed("G_ema", self.ema.module.state_dict()))
        if self.augment is not None:
            tensors.update(self.augment.state())
        meta = {}
        for name, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            flat, meta[name] = flatten_optimizer(optimizer, name)
            tensors.update(flat)
        return tensors, meta

    def load_state(self, tensors: dict, meta: dict, step: int) -> None:
        """Inverse of :meth:`state_tensors`, at generator step ``step``."""
        self.G.load_state_dict(unprefixed("G", tensors))
        self.D.load_state_dict(unprefixed("D", tensors))
        for prefix, module in self.extra_modules().items():
            module.load_state_dict(unprefixed(prefix, tensors))
        if self.ema is not None:
            self.ema.module.load_state_dict(unprefixed("G_ema", tensors))
        if self.augment is not None:
            self.augment.load(tensors)
        unflatten_optimizer(self.opt_G, "opt_G", tensors, meta["opt_G"])
        unflatten_optimizer(self.opt_D, "opt_D", tensors, meta["opt_D"])
        self.steps, self.critic_steps = step, step * self.opts.d_steps_per_g_step


def _autocasts(opts: TrainOptions, device: torch.device):
    """``(autocast of the G and D forwards, autocast of the penalty pass)`` as context factories."""
    cuda = device.type == "cuda"
    if opts.gp_precision == "bf16" and not cuda:
        raise ValueError("gp_precision=bf16 runs the penalty under CUDA bf16 autocast; on CPU use gp_precision=float32")
    if opts.amp == "bf16" and not cuda:
        warnings.warn("amp=bf16 autocasts on CUDA only: this CPU run trains in float32 (set --amp=none to silence "
                      "this)", UserWarning, stacklevel=3)
    bf16 = lambda: torch.autocast("cuda", dtype=torch.bfloat16)                     # noqa: E731
    off = lambda: torch.autocast(device.type, enabled=False)                          # noqa: E731
    return (bf16 if cuda and opts.amp == "bf16" else contextlib.nullcontext), (bf16 if opts.gp_precision == "bf16" else off)


def _optimizers(opts: TrainOptions, G: nn.Module, critics: nn.Module, cuda: bool):
    """``(opt_G, opt_D)``: RMSProp for ``wgan-clip`` (Arjovsky et al. 2017: momentum destabilises a clipped
    critic), else Adam (fused on CUDA, foreach on CPU), D's lr and betas rescaled by ``k / (k + 1)`` for lazy
    R1 every ``k`` steps (StyleGAN2: the separate R1 pass adds one optimizer step in ``k``)."""
    if opts.loss == "wgan-clip":
        return (torch.optim.RMSprop(G.parameters(), lr=opts.lr, foreach=True),
                torch.optim.RMSprop(critics.parameters(), lr=opts.lr, foreach=True))
    kind = {"fused": True} if cuda else {"foreach": True}
    ratio = opts.gp_interval / (opts.gp_interval + 1) if opts.gp_interval > 1 else 1.0
    opt_G = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas, **kind)
    opt_D = torch.optim.Adam(critics.parameters(), lr=opts.lr * ratio, betas=tuple(b ** ratio for b in opts.betas),
                             **kind)
    return opt_G, opt_D


def _extra_critics(G, D, opts: TrainOptions, seed: int, device, aux_classifier):
    """``(STFT critic, AC-GAN head, frozen classifier, its label index)``, each ``None`` when off; the new
    modules are initialised from their own seeds, leaving every random stream untouched."""
    stft = aux_head = classifier = index = None
    if opts.stft_critic:
        from ganaug.models.stft_critic import MultiResolutionSTFTCritic

        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed + 1)
            stft = MultiResolutionSTFTCritic(G.label_names, channels=max(4, getattr(D, "model_dim", 64) // 4))
        stft = stft.to(device).train()
    if opts.aux_weight > 0:
        if opts.aux == "acgan":
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(seed + 2)
                aux_head = nn.Linear(D.feature_dim, len(G.label_names)).to(device)
        if opts.aux == "frozen":
            classifier, index = _frozen_classifier(aux_classifier, G, device)
    return stft, aux_head, classifier, index


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
