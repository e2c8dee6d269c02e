"""Distributed data parallel with ``torchrun``: one process per GPU (or several on CPU).

``torchrun --nproc_per_node 4 -m edge_emotion.cli train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous variables; :func:`init_distributed` reads them and joins the
process group with NCCL on CUDA, gloo on CPU. Without them (a plain ``edge-emotion train``) it
returns a single-process context and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size``, its ``device`` and backend."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistContext:
    """Join the ``torchrun`` job described by the environment, or run alone.

    ``device``: ``"cuda"``/``"cpu"`` to force one; by default CUDA when available (``cuda:LOCAL_RANK``).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    backend = None
    if world_size > 1:
        backend = "nccl" if use_cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, dev, backend)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_across(ctx: DistContext, value: float, weight: float = 1.0) -> float:
    """The ``weight``-weighted mean of ``value`` over all processes."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value * weight, weight], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t[0] / t[1]) if t[1] > 0 else 0.0


def broadcast_value(ctx: DistContext, value: float) -> float:
    """Rank 0's ``value`` on every process."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.broadcast(t, src=0)
    return float(t[0])


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistContext", "init_distributed", "barrier", "mean_across", "broadcast_value", "cleanup"]
