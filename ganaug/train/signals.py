"""Stopping a training run on SIGINT/SIGTERM without a signal ever landing in the computation.

Why the signals are blocked rather than only caught: oneDNN's JIT f32 GEMM kernels (the CPU
convolutions of every generator and critic) point the stack pointer into heap memory while they
run; a signal delivered to a thread inside one makes the kernel write its signal frame there and
corrupts the heap, whatever the handler does (glibc ``corrupted size vs. prev_size while
consolidating``, exit -6; oneDNN issue #4845). A handler that does nothing, in C or in Python, is
enough: a SIGALRM every 0.5 ms through a bare ``Conv1d`` backward aborts or hangs here within
seconds, and runs clean with the signal blocked.

So while a run trains, :class:`StopRequest` blocks SIGINT and SIGTERM in the training thread
(threads it starts afterwards, as tqdm's monitor, TensorBoard's writer or an OpenMP pool made
later, inherit the mask) and the loop asks :meth:`StopRequest.requested` between steps: a
pending signal is taken there (``sigtimedwait`` with no wait). A thread that existed before and
does not block them may still be chosen by the kernel; there Python's handler only records the
number, which ``requested`` reads too. After the first signal the previous handlers and the mask
come back, so a second one gets the default behaviour (a user who insists). A process started while
the run trains inherits the mask (POSIX); the only ones a run may start, torch.compile's workers,
are shut down by a message and kill themselves when their parent dies.
"""

from __future__ import annotations

import signal
import threading

import torch

__all__ = ["StopRequest", "STOP_SIGNALS"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CAN_BLOCK = hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigtimedwait")


class StopRequest:
    """``with StopRequest() as stop:`` around the loop; ``stop.requested(dist, device)`` between steps."""

    def __init__(self):
        self.signum = 0
        self._previous: dict = {}
        self._mask = None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._record)
            if _CAN_BLOCK:
                self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        return self

    def _record(self, signum, frame) -> None:   # runs in the main thread, between bytecodes: a flag only
        self.signum = self.signum or signum

    def _take_pending(self) -> None:
        if self._mask is not None and not self.signum:
            info = signal.sigtimedwait(STOP_SIGNALS, 0)
            if info is not None:
                self.signum = info.si_signo

    def _restore(self) -> None:
        """Previous handlers first, then the mask: a signal still pending meets the handler it would have met."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        if self._mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            self._mask = None

    def __exit__(self, *exc) -> bool:
        self._restore()
        return False

    def requested(self, dist=None, device=None) -> int:
        """The signal number (0: none); under torchrun every process agrees (one all-reduce)."""
        self._take_pending()
        if self.signum and self._previous:
            self._restore()                                 # the next one is not caught
        if dist is None or not dist.active:
            return self.signum
        flag = torch.tensor([float(self.signum)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())
