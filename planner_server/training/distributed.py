"""Data-parallel training across processes (one per GPU, or several on a CPU for tests), launched
with torchrun. Each rank runs the rollouts of its share of the batch; gradients are averaged before
every optimizer step; rank 0 alone writes metrics and checkpoints.

    torchrun --nproc_per_node=4 -m clients.cli train --config configs/my-run.yaml
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        return cls(rank=dist.get_rank(), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, requested: str) -> str:
        if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
            return "cpu"
        return f"cuda:{self.local_rank}" if self.world > 1 else "cuda"

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.world <= 1:
            return
        import torch.distributed as dist

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= self.world

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def params_digest(model) -> str:
    """A digest of the trainable weights: equal on every rank when data parallelism is in sync."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
