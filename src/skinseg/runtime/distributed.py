"""Running under `torchrun`: process group set-up, which rank writes, and summing numbers across ranks.

Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op for one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def env_rank_world() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them in the environment; (0, 1) without torchrun. The one place
    that reads these variables."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return env_rank_world()[0] == 0


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group torchrun describes: NCCL on CUDA, gloo on the CPU; one GPU per local rank."""
    rank, world = env_rank_world()
    if world <= 1:
        return Context(), device
    context = Context(rank, world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return context, device


def sum_across(context: Context, values: list[float], device: torch.device) -> list[float]:
    if not context.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(context: Context) -> None:
    if context.active:
        dist.barrier()


def teardown(context: Context) -> None:
    if context.active and dist.is_initialized():
        dist.destroy_process_group()
