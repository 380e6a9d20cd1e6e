"""Pieces both training stages share: the learning-rate schedule, batches of rendered pixels,
training-state files and the loss plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch


def get_lr(step: int, base_lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """1) linear warm-up, 2) cosine decay to `min_ratio`·base, 3) flat after `total`."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if step >= total:
        return base_lr * min_ratio
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def flush_denormals() -> None:
    """Treat denormal floats as zero in this training process.

    Trained weights and latents make denormals in backward, which x86 CPUs handle in microcode;
    flushing them gives the same logged losses, faster (with spinning OpenMP threads, see
    tuna_core.__main__, a bf16 joint step here went from 3.8 s to 2.8 s).
    Call it before the first tensor op: the flag is per thread, and the CPU thread pool's workers
    copy it from the thread that starts them, so a later call reaches the calling thread only.
    """
    torch.set_flush_denormal(True)


def step_rng(seed: int, step: int, rank: int = 0) -> np.random.Generator:
    """The data stream is a pure function of (seed, step, rank): resuming replays it exactly."""
    return np.random.default_rng([seed, step, rank])


def append_log(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_log(path: Path, step: int) -> None:
    """Drop records after `step` (written after the last checkpoint of an interrupted run)."""
    kept = [r for r in read_log(path) if r["step"] <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def plot_losses(log_path: Path, out_png: Path, title: str) -> None:
    """One line per logged loss against step, log-scale, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    if not records:
        return
    keys = sorted({k for r in records for k in r if k.startswith(("loss", "eval"))})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key in keys:
        pts = [(r["step"], r[key]) for r in records if key in r]
        ax.plot(
            *zip(*pts, strict=True), label=key.removeprefix("loss/"), linestyle="--" if key.startswith("eval") else "-"
        )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
