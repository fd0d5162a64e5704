"""Many processes with torchrun: samples are sharded by length-balanced bins, each rank writes
its own durable shard, rank 0 merges. No DDP/FSDP wrapper is involved (per-sample statistics
come from hooks; docs/guide/how-it-works.md, "Many processes"): torch.distributed only gives ranks and barriers.

    torchrun --nproc-per-node 4 -m layergrad compute --data ... --out RUN
    torchrun --nnodes 2 --node-rank N --master-addr HOST --nproc-per-node 8 -m layergrad compute ...
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def current_world() -> World:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, device: str) -> bool:
    """Join the process group (gloo on CPUs, nccl on GPUs) unless already joined (e.g. by a
    Trainer); True when this call created it (and ``finish`` should end it)."""
    import torch.distributed as dist

    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=timedelta(hours=6))
        return True
    return False


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def leave(world: World, created: bool = True) -> None:
    """End the process group, if this run created it."""
    if world.distributed and created:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def assign(costs: dict, size: int) -> dict:
    """{key: rank}: longest first onto the least-loaded rank (greedy bin packing, ties by rank),
    so every rank gets about the same work, not the same number of samples."""
    heap = [(0, r) for r in range(size)]
    out = {}
    for key, cost in sorted(costs.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        load, rank = heapq.heappop(heap)
        out[key] = rank
        heapq.heappush(heap, (load + cost, rank))
    return out
