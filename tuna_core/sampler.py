"""Rectified-flow schedules and solvers, classifier-free guidance and token sampling.

Convention (DESIGN.md): x_t = t·x1 + (1−t)·x0 with x1 the clean latent and x0 noise, so t runs
from 0 (noise) to 1 (clean) and the model predicts the velocity x1 − x0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> v


class OdeStep(NamedTuple):
    """One solver step: how far along, and where it points and lands."""

    done: int  # steps taken, this one included
    total: int
    clean: torch.Tensor  # the clean latents this step's velocity points at from where it started: x_t + (1 − t)·v
    x: torch.Tensor  # where the step lands


def resolution_shift(base_shift: float, num_tokens: int, reference_tokens: int) -> float:
    """Time shift for a token count: more tokens keep more signal at a given t, so shift more.

    Scales the shift by sqrt(tokens / reference) (SD3's resolution-dependent shift), never
    below the base shift, so video and large images spend more steps at high noise.
    """
    return base_shift * math.sqrt(max(num_tokens / reference_tokens, 1.0))


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Warp t towards noise: noise level σ = 1−t becomes shift·σ / (1 + (shift−1)·σ)."""
    sigma = 1.0 - t
    sigma = shift * sigma / (1.0 + (shift - 1.0) * sigma)
    return 1.0 - sigma


def time_grid(steps: int, shift: float) -> torch.Tensor:
    """(steps+1,) float64 times from 0 (noise) to 1 (clean), shifted."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return shift_time(torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64), shift)


def sample_train_time(batch: int, shift: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logit-normal t (mean 0, std 1), then the same shift as sampling uses."""
    u = torch.randn(batch, generator=generator)
    return shift_time(torch.sigmoid(u), shift)


def guided(velocity: torch.Tensor, guidance: float) -> torch.Tensor:
    """Combine a [conditional; unconditional] batch: v_u + g·(v_c − v_u). Guidance 1 = conditional."""
    cond, uncond = velocity.chunk(2)
    return uncond + guidance * (cond - uncond)


def guided_edit(velocity: torch.Tensor, guidance: float, image_guidance: float) -> torch.Tensor:
    """Combine a [source + instruction; source only; neither] batch with two scales (InstructPix2Pix):
    v_0 + s_I·(v_s − v_0) + g·(v_si − v_s).

    s_I > 1 pushes the result towards what the source alone predicts, so an edit keeps more of what
    the instruction leaves alone; s_I = 1 is `guided` on the first two thirds."""
    both, source, empty = velocity.chunk(3)
    return empty + image_guidance * (source - empty) + guidance * (both - source)


def ode_steps(velocity: Velocity, x0: torch.Tensor, times: torch.Tensor, *, solver: str = "euler") -> Iterator[OdeStep]:
    """Integrate dx/dt = v(x, t) from times[0] to times[-1], one step per item.

    Euler: one evaluation per step. Heun: a second evaluation at the step's end (except the
    last step, which lands on t=1 where the trapezoid rule would query the clean endpoint).
    Arithmetic in float32 regardless of the model's dtype. A caller that stops iterating leaves
    the solve suspended, to finish later or never: an edit drops a draw that reads as its source
    part-way (`TunaPipeline._first_change`).
    """
    if solver not in ("euler", "heun"):
        raise ValueError(f"unknown solver {solver!r}; use 'euler' or 'heun'")
    x = x0.float()
    steps = len(times) - 1
    for i in range(steps):
        t, t_next = float(times[i]), float(times[i + 1])
        dt = t_next - t
        v = velocity(x, torch.full((x.shape[0],), t, device=x.device)).float()
        if solver == "heun" and i < steps - 1:
            x_pred = x + dt * v
            v_next = velocity(x_pred, torch.full((x.shape[0],), t_next, device=x.device)).float()
            v = 0.5 * (v + v_next)
        clean = x + (1.0 - t) * v
        x = x + dt * v
        yield OdeStep(i + 1, steps, clean, x)


def sample_token(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, V) logits → (B,) ids: greedy at temperature 0, else nucleus sampling from `generator`."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(dim=-1) - sorted_probs < top_p  # always keeps the top token
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
