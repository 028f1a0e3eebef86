"""Data parallelism under ``torchrun``: one process per GPU (or CPU process with gloo).

Gradients are averaged by hand after each backward (as StyleGAN2-ADA does) instead of wrapping
the networks in ``DistributedDataParallel``: the gradient penalty differentiates D twice
(``autograd.grad(create_graph=True)``), which DDP's reducer hooks do not support, and the
unconditional critic has parameters that get no gradient in some steps. The result is the same
data-parallel update: identical weights on every rank, each rank drawing its own share of the
global batch. Process 0 writes every file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "setup"]


@dataclass
class Dist:
    """Where this process stands: ``rank`` of ``world_size`` (1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy process 0's parameters and buffers to every process."""
        if self.active:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, module: torch.nn.Module) -> None:
        """All-reduce (mean) the gradients of ``module`` in one flat buffer. Parameters without a gradient
        (e.g. the class head in the lazy R1 pass) keep none, so the optimizer skips them as it does on one
        process; which parameters have one is decided by the step's code, the same on every process."""
        if not self.active:
            return
        params = [p for p in module.parameters() if p.requires_grad and p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes in place (an asynchronous collective: no host synchronisation)."""
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Average scalar tensors over processes (one all-reduce) and return them as floats."""
        keys = sorted(values)
        stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float32).reshape(()) for k in keys])
        if self.active:
            dist.all_reduce(stacked)
            stacked /= self.world_size
        return dict(zip(keys, stacked.tolist()))

    def gather(self, tensor: torch.Tensor, device) -> list[torch.Tensor]:
        """``tensor`` of every process (same shape everywhere), on the CPU, in rank order."""
        if not self.active:
            return [tensor.cpu()]
        local = tensor.to(device)
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local)
        return [t.cpu() for t in out]

    def check_in_sync(self, module: torch.nn.Module, device, what: str) -> None:
        """Fail loudly if the ranks' copies of ``module`` have drifted apart."""
        if not self.active:
            return
        with torch.no_grad():
            total = torch.stack([p.double().sum() for p in module.parameters()]).sum().reshape(1)
        sums = torch.cat(self.gather(total, device))
        if not torch.all(sums == sums[0]):
            raise RuntimeError(f"{what} weights differ between processes ({sums.tolist()}); gradient averaging failed")


def setup(device: str) -> tuple[Dist, torch.device]:
    """Join the process group that ``torchrun`` describes (if any) and pick this process's device.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when visible). Under torchrun each
    process takes GPU ``LOCAL_RANK`` and NCCL, or gloo on CPU.
    """
    if device == "auto":
        from ganaug.env import resolve_device

        device = resolve_device("auto", say=os.environ.get("RANK", "0") == "0")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but no CUDA GPU is visible to torch; use --device=cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device={device!r}: choose cpu, cuda or auto")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(), torch.device(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch_device.type == "cuda" else "gloo")
    return Dist(rank, world_size, local_rank), torch_device
