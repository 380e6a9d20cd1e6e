"""Parity: does a compiled unit compute what the eager unit computes?

A compiler can be silently wrong (an attention lowered as causal, an fp16 overflow), so every
engine is run against eager on a fixed input before it is used. Features are compared by cosine
similarity, decoded pixels by PSNR; the worst sample decides. NaN or inf fails both checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

FEATURE_COSINE_MIN = 0.999
IMAGE_PSNR_MIN_DB = 40.0
PIXEL_RANGE = 2.0  # decoded pixels live in [-1, 1]

Unit = Callable[[torch.Tensor], torch.Tensor]


class ParityError(RuntimeError):
    """A compiled unit's outputs differ from eager's by more than the threshold allows."""


@dataclass(frozen=True)
class Parity:
    metric: str  # "cosine" or "psnr"
    value: float
    threshold: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold  # False for NaN

    def __str__(self) -> str:
        unit = " dB" if self.metric == "psnr" else ""
        return f"{self.metric} {self.value:.5g}{unit}, needs ≥ {self.threshold:g}{unit}"


def cosine_similarity(candidate: torch.Tensor, reference: torch.Tensor) -> float:
    """Smallest per-sample cosine similarity of the flattened outputs (B, ...) → float."""
    a, b = _pair(candidate, reference)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return math.nan
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12)  # (B,)
    return float(cos.min())


def psnr(candidate: torch.Tensor, reference: torch.Tensor, data_range: float = PIXEL_RANGE) -> float:
    """Peak signal-to-noise ratio in dB of the worst sample; inf when identical, NaN if not finite."""
    a, b = _pair(candidate, reference)
    mse = (a - b).pow(2).reshape(a.shape[0], -1).mean(dim=1).max()
    if not torch.isfinite(mse):
        return math.nan
    if mse == 0:
        return math.inf
    return float(10.0 * torch.log10(data_range**2 / mse))


def compare(metric: str, candidate: torch.Tensor, reference: torch.Tensor) -> Parity:
    """Score one pair of outputs with `metric` against its threshold."""
    if metric == "cosine":
        return Parity(metric, cosine_similarity(candidate, reference), FEATURE_COSINE_MIN)
    if metric == "psnr":
        return Parity(metric, psnr(candidate, reference), IMAGE_PSNR_MIN_DB)
    raise ValueError(f"unknown parity metric {metric!r}; use 'cosine' or 'psnr'")


@torch.no_grad()
def check(candidate: Unit, reference: Unit, inputs: Iterable[torch.Tensor], metric: str) -> Parity:
    """Run both units on every input; the worst score is returned (the caller decides what fails)."""
    worst: Parity | None = None
    for x in inputs:
        score = compare(metric, candidate(x), reference(x))
        if worst is None or not score.value >= worst.value:  # NaN sticks as the worst
            worst = score
    if worst is None:
        raise ValueError("parity needs at least one input")
    return worst


def _pair(candidate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if candidate.shape != reference.shape:
        raise ParityError(f"output shape {tuple(candidate.shape)} differs from eager's {tuple(reference.shape)}")
    return candidate.detach().double().cpu(), reference.detach().double().cpu()
