"""The parity grid: convolution configurations shared by every impl's tests.

Sampling: for every (rank, padding_mode, padding form) triple (3 x 4 x 4 = 48)
two configurations are drawn with a fixed seed; stride, dilation, groups
(1, 2 or depthwise), bias and batch kind (batched, unbatched, zero batch) are
drawn per configuration. 'same' forces stride 1. Spatial sizes are kept small
but large enough for PyTorch's reflect limit.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np

RANKS = (1, 2, 3)
MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_FORMS = ("int", "tuple", "same", "valid")
BATCH_KINDS = ("batched", "unbatched", "zero")


@dataclasses.dataclass(frozen=True)
class Case:
    rank: int
    batch: str
    groups: int
    group_in: int
    group_out: int
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: int | tuple[int, ...]
    padding: int | tuple[int, ...] | str
    dilation: int | tuple[int, ...]
    padding_mode: str
    bias: bool

    @property
    def id(self) -> str:
        return (f"{self.rank}d-{self.batch}-g{self.groups}-s{self.stride}-p{self.padding}"
                f"-d{self.dilation}-{self.padding_mode}-{'b' if self.bias else 'nb'}"
                ).replace(" ", "")

    @property
    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, padding_mode=self.padding_mode)

    def arrays(self, dtype=np.float64, seed=0):
        rng = np.random.default_rng(seed)
        c_in, c_out = self.groups * self.group_in, self.groups * self.group_out
        n = {"batched": (2,), "unbatched": (), "zero": (0,)}[self.batch]
        x = rng.standard_normal((*n, c_in, *self.spatial)).astype(dtype)
        w = rng.standard_normal((c_out, self.group_in, *self.kernel)).astype(dtype)
        b = rng.standard_normal((c_out,)).astype(dtype) if self.bias else None
        return x, w, b


def _draw(rng: random.Random, rank: int, mode: str, form: str) -> Case:
    kernel = tuple(rng.choice((1, 2, 3)) for _ in range(rank))
    if rank == 1:
        kernel = (rng.choice((2, 3, 5)),)
    stride = 1 if form == "same" else rng.choice((1, 2, (1, 2, 3)[:rank] if rank > 1 else 3))
    dilation = rng.choice((1, 2, (2, 1, 1)[:rank] if rank > 1 else 1))
    padding = {"int": rng.choice((1, 2)), "tuple": (2, 0, 1)[:rank] if rank > 1 else (1,),
               "same": "same", "valid": "valid"}[form]
    groups, group_in, group_out = rng.choice(((1, 3, 2), (2, 2, 3), (4, 1, 1), (3, 1, 2)))
    size = {1: 9, 2: 7, 3: 5}[rank]
    spatial = tuple(size + rng.choice((0, 1)) for _ in range(rank))
    return Case(rank, rng.choice(BATCH_KINDS), groups, group_in, group_out, spatial, kernel,
                stride, padding, dilation, mode, rng.random() < 0.7)


def parity_grid(draws: int = 2, seed: int = 2026) -> list[Case]:
    rng = random.Random(seed)
    return [_draw(rng, r, m, f) for r, m, f in itertools.product(RANKS, MODES, PADDING_FORMS)
            for _ in range(draws)]


GRID = parity_grid()
