"""Paired comparison of checkpoints, scene by scene: is one model better than another on the same scenes?

A mean PQ over 16 scenes moves by a few hundredths between sets, so two models' means can disagree on the
sign of a real difference. Pairing each scene's PQ under one model with its PQ under the other removes the
scenes' own difficulty from the comparison; the bootstrap over scenes gives the uncertainty of the mean
gain. The per-scene tables that `flows.evaluate` logs with every configuration run are pooled over all the
runs of a checkpoint and configuration, so several stores (held-out sets of several seeds) count together;
a scene scored twice keeps its latest run's row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CONFIG_KEYS = ("postprocess", "keyframes")
DEFAULT_RESAMPLES = 5000
INTERVAL = 0.95


@dataclass(frozen=True)
class PairedGain:
    """Candidate minus baseline over the scenes both scored."""

    scenes: int
    mean_gain: float
    low: float
    high: float
    scenes_up: int
    scenes_down: int

    @property
    def significant(self) -> bool:
        """The interval lies wholly above or below zero."""
        return self.low > 0.0 or self.high < 0.0


def paired_gain(gains: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> PairedGain:
    """Mean of the per-scene gains and its percentile bootstrap interval (scenes resampled with
    replacement; a fixed seed, so a report is reproducible)."""
    gains = np.asarray(gains, dtype=np.float64)
    if gains.size == 0:
        raise ValueError("no scene was scored by both checkpoints: nothing to pair")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, gains.size, size=(resamples, gains.size))
    means = gains[picks].mean(axis=1)
    tail = (1.0 - INTERVAL) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PairedGain(
        scenes=int(gains.size),
        mean_gain=float(gains.mean()),
        low=float(low),
        high=float(high),
        scenes_up=int((gains > 0).sum()),
        scenes_down=int((gains < 0).sum()),
    )


def pooled_scene_scores(runs: pd.DataFrame, tables: dict[str, pd.DataFrame], metric: str) -> pd.Series:
    """One checkpoint and configuration's runs (with `run_id` and `started`) -> scene id -> `metric`, the
    latest run winning where runs share a scene."""
    frames = []
    for _, run in runs.sort_values("started").iterrows():
        table = tables.get(str(run["run_id"]))
        if table is not None and metric in table.columns:
            frames.append(table[["scene_id", metric]])
    if not frames:
        return pd.Series(dtype=np.float64)
    pooled = pd.concat(frames).drop_duplicates("scene_id", keep="last")
    return pooled.set_index("scene_id")[metric].astype(np.float64)


def paired_table(
    runs: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    baseline: str,
    metric: str = "PQ",
    resamples: int = DEFAULT_RESAMPLES,
) -> pd.DataFrame:
    """Every other checkpoint against `baseline` in each configuration both were scored in: one row with
    the scenes paired, the two means over them, the mean gain, its interval and the scenes up / down."""
    if baseline not in set(runs["checkpoint"]):
        known = ", ".join(sorted(str(c) for c in set(runs["checkpoint"])))
        raise ValueError(f"--paired {baseline!r} names no checkpoint of these runs; they have: {known}")
    rows = []
    for config, group in runs.groupby(list(CONFIG_KEYS), sort=True):
        base = pooled_scene_scores(group[group["checkpoint"] == baseline], tables, metric)
        for candidate, candidate_runs in group[group["checkpoint"] != baseline].groupby("checkpoint"):
            other = pooled_scene_scores(candidate_runs, tables, metric)
            shared = base.index.intersection(other.index)
            if shared.empty:
                continue
            gain = paired_gain((other[shared] - base[shared]).to_numpy(), resamples)
            rows.append(
                {
                    "checkpoint": candidate,
                    "baseline": baseline,
                    **dict(zip(CONFIG_KEYS, config, strict=True)),
                    "scenes": gain.scenes,
                    f"baseline {metric}": float(base[shared].mean()),
                    metric: float(other[shared].mean()),
                    "gain": gain.mean_gain,
                    "low": gain.low,
                    "high": gain.high,
                    "up": gain.scenes_up,
                    "down": gain.scenes_down,
                    "significant": gain.significant,
                }
            )
    return pd.DataFrame(rows)
