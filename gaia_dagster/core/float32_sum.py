"""The float32 sum the deployed weight path normalises with, reproduced bit for bit.

Gaia's weight setter divides its float32 weight vector by that vector's sum, computed by PyTorch
on the CPU. A float32 sum depends on the order of its additions, and PyTorch's is neither
left-to-right nor numpy's pairwise order: it is a cascade sum over SIMD lanes (ATen's
``SumKernel``: ``vectorized_inner_sum`` -> ``row_sum`` -> ``multi_row_sum``). One unit in the last
place of that sum moves each normalised weight, and with it, now and then, a u16 value the chain
receives; so the order is reproduced here, in float32, without PyTorch.

The lane count is 8 floats (a 256-bit register): PyTorch dispatches its sum kernel to the AVX2
or default build on every x86 CPU, AVX-512 ones included (checked against PyTorch 2.13 on an
AVX-512 machine with each ``ATEN_CPU_CAPABILITY``: identical sums for every length up to 4096).
Lengths over 32768 would be split across threads; weight vectors have at most 256.
"""

from __future__ import annotations

import numpy as np

ILP = 4           # row_sum: independent accumulators (instruction-level parallelism)
LEVELS = 4        # multi_row_sum: cascade levels
LANES = 8         # floats per SIMD vector in the kernel PyTorch dispatches to


def _ceil_log2(x: int) -> int:
    """c10's CeilLog2: 1 for x <= 2, else the bit length of x - 1."""
    return 1 if x <= 2 else int(x - 1).bit_length()


def multi_row_sum(rows: np.ndarray) -> np.ndarray:
    """ATen ``multi_row_sum``: ``rows`` (size, nrows, ...) summed over axis 0 in a cascade of
    ``LEVELS`` accumulators, each level flushed into the next every ``2**level_power`` rows."""
    size = rows.shape[0]
    level_power = max(4, _ceil_log2(size) // LEVELS)
    step, mask = 1 << level_power, (1 << level_power) - 1
    acc = np.zeros((LEVELS, *rows.shape[1:]), dtype=np.float32)
    i = 0
    while i + step <= size:
        for _ in range(step):
            acc[0] += rows[i]
            i += 1
        for level in range(1, LEVELS):
            acc[level] += acc[level - 1]
            acc[level - 1] = 0
            if i & (mask << (level * level_power)):
                break
    while i < size:
        acc[0] += rows[i]
        i += 1
    for level in range(1, LEVELS):
        acc[0] += acc[level]
    return acc[0]


def row_sum(items: np.ndarray) -> np.ndarray:
    """ATen ``row_sum``: ``items`` (m, ...) read as (m // 4, 4, ...) rows for ``multi_row_sum``,
    the m % 4 left over added to the first partial sum, then the four partials folded in order."""
    m = items.shape[0]
    groups = m // ILP
    partial = multi_row_sum(items[: groups * ILP].reshape(groups, ILP, *items.shape[1:]))
    for i in range(groups * ILP, m):
        partial[0] += items[i]
    for k in range(1, ILP):
        partial[0] += partial[k]
    return partial[0]


def torch_cpu_sum(values: np.ndarray, lanes: int = LANES) -> np.float32:
    """``torch.Tensor.sum()`` of a contiguous 1-D float32 vector on the CPU.

    With at least ``lanes`` values: the whole SIMD vectors are summed lane-wise by ``row_sum``,
    then the tail values one by one from 0, then the lanes in order. Fewer values: ``row_sum``
    on the scalars."""
    x = np.ascontiguousarray(values, dtype=np.float32)
    if x.size < lanes:
        return np.float32(row_sum(x.reshape(-1)))
    whole = x.size // lanes
    vector = row_sum(x[: whole * lanes].reshape(whole, lanes))
    total = np.float32(0)
    for value in x[whole * lanes:]:
        total = np.float32(total + value)
    for value in vector:
        total = np.float32(total + value)
    return total
