"""Cost and accuracy of finding copies by content (``core.copies``) at 256 miners.

Fingerprints are sampled from the embedded world's fields at the run's points: 240 honest miners
(a good forecast of the world plus an independent error of 1 to 10 % of each field's spread, the range that
separates the reference miners' profiles), 16 copiers of random honest miners (relative noise of
1e-6, 1e-5 or 5e-5, or none: a re-encoded copy has the same values). Prints the time to sample one
forecast (8 fields of a 0.25 degree plane), the whole comparison and its cost per miner pair, the
copiers found and the honest miners flagged.

    .venv/bin/python benchmarks/copies.py [--miners 256] [--copiers 16] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

import numpy as np

from gaia_dagster.core.contract import Grid
from gaia_dagster.core.copies import (
    COPY_THRESHOLD, FIELDS, POINTS, FieldRef, copy_pairs, fingerprint_plan, honest_spread, pairs_with,
    sample_plane,
)
from gaia_dagster.world.atmosphere import SyntheticAtmosphere
from gaia_dagster.world.forecasts import forecast_step

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
NOISES = (0.0, 1e-6, 1e-5, 5e-5)


def world_samples(plan, grid: Grid) -> np.ndarray:  # noqa: ANN001
    """A good forecast of the world at the plan's fields and points (fields x points)."""
    world = SyntheticAtmosphere(resolution=grid.resolution)
    rows = []
    for field in plan.fields:
        step = forecast_step(world, "good", T0, 6 * (field.time_index + 1), member="truth")
        da = step[field.variable]
        if field.level is not None:
            da = da.sel(pressure_level=field.level)
        rows.append(sample_plane(np.asarray(da.values), grid.lat, grid.lon, plan))
    return np.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--copiers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    grid = Grid(1.5)
    fields = [FieldRef(v, lvl, t) for v in ("2t", "msl", "10u") for lvl in (None,) for t in range(40)]
    fields += [FieldRef(v, lvl, t) for v in ("t", "z", "q") for lvl in (500, 850) for t in range(40)]
    plan = fingerprint_plan("ab" * 32, fields, grid.lat, grid.lon)
    base = world_samples(plan, grid)
    spread = base.std(axis=1, keepdims=True)
    honest = args.miners - args.copiers
    prints = {f"honest-{i:03d}": (base + spread * rng.uniform(0.01, 0.10) * rng.standard_normal(base.shape))
              .astype(np.float32) for i in range(honest)}
    copied = {}
    for i in range(args.copiers):
        victim = f"honest-{rng.integers(honest):03d}"
        noise = NOISES[i % len(NOISES)]
        values = prints[victim] * (1 + noise * rng.standard_normal(base.shape))
        prints[f"copier-{i:02d}-{noise:g}"] = values.astype(np.float32)
        copied[f"copier-{i:02d}-{noise:g}"] = victim

    big = Grid(0.25)
    plane = np.random.default_rng(1).standard_normal((big.lat.size, big.lon.size)).astype(np.float32)
    big_plan = fingerprint_plan("cd" * 32, fields, big.lat, big.lon)
    started = time.perf_counter()
    for _ in range(FIELDS):
        sample_plane(plane, big.lat, big.lon, big_plan)
    sample_s = time.perf_counter() - started

    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        pairs = copy_pairs(prints)
        timings.append(time.perf_counter() - started)
    n_pairs = args.miners * (args.miners - 1) // 2
    best = min(timings)
    found = {p.a if p.a.startswith("copier") else p.b: p for p in pairs if "copier" in p.a + p.b}
    flagged_honest = {h for p in pairs for h in (p.a, p.b) if h.startswith("honest") and h not in copied.values()}
    print(f"fingerprint: {FIELDS} fields x {POINTS} points = {FIELDS * POINTS * 4 // 1024} KiB per forecast; "
          f"sampling 8 fields of a 0.25 degree plane: {sample_s * 1e3:.2f} ms")
    print(f"{args.miners} miners, {n_pairs} pairs: comparison {best * 1e3:.1f} ms (best of {args.repeat}), "
          f"{best / n_pairs * 1e6:.2f} us per pair")
    started = time.perf_counter()
    pairs_with("honest-000", prints)
    print(f"one miner against the {args.miners - 1} others (the check each stage makes): "
          f"{(time.perf_counter() - started) * 1e3:.1f} ms")
    for noise in NOISES:
        mine = [c for c in copied if c.endswith(f"-{noise:g}")]
        hits = [c for c in mine if c in found and copied[c] in (found[c].a, found[c].b)]
        dist = max((found[c].distance for c in hits), default=float("nan"))
        print(f"copiers with relative noise {noise:g}: {len(hits)}/{len(mine)} found (largest distance {dist:.2e}, "
              f"threshold {COPY_THRESHOLD:g})")
    print(f"honest miners flagged: {len(flagged_honest)} of {honest}; honest spread (median distance) "
          f"{honest_spread(prints, pairs):.3f}")


if __name__ == "__main__":
    main()
