"""``torch.compile`` of what compiles, with a fall-back to eager that never crashes a run.

The training step compiles the generator's forward and the critic's scoring pass (``compile: default``,
or ``reduce-overhead`` for CUDA graphs on top). The penalties' double backward (``autograd.grad`` with
``create_graph``) stays eager: AOTAutograd does not support double backward, and tracing it is an
experimental dynamo path. A part that fails to compile (at its first call, or at a later recompile)
warns once, naming the part and the error, and runs eagerly from then on.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["Compiled", "maybe_compile"]


class Compiled:
    """``fn`` through ``torch.compile(mode, backend)``; on any compile or run failure of the compiled
    path, one warning and ``fn`` itself from then on (an error of ``fn`` itself is raised as usual)."""

    def __init__(self, fn, what: str, mode: str = "default", backend: str = "inductor"):
        self.eager, self.what, self.mode = fn, what, mode
        self.compiled = torch.compile(fn, mode=None if mode == "default" else mode, backend=backend)

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any failure of the compiled path falls back to eager
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                warnings.warn(f"compile={self.mode}: {self.what} failed under torch.compile "
                              f"({type(err).__name__}: {first[:200]}); it runs eagerly for the rest of the run",
                              RuntimeWarning, stacklevel=2)
                self.compiled = None
        return self.eager(*args, **kwargs)


def maybe_compile(fn, what: str, mode: str, backend: str = "inductor"):
    """``fn`` itself for ``mode="none"``, else a :class:`Compiled` of it."""
    return fn if mode == "none" else Compiled(fn, what, mode, backend)
