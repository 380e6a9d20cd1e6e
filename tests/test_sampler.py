"""Rectified-flow schedule, solvers, guidance and token sampling."""

import math

import pytest
import torch

from tuna_core.sampler import (
    guided,
    guided_edit,
    ode_steps,
    resolution_shift,
    sample_token,
    sample_train_time,
    shift_time,
    time_grid,
)


def test_time_grid_runs_from_noise_to_clean():
    grid = time_grid(10, 3.0)
    assert grid[0] == 0.0 and grid[-1] == 1.0
    assert (grid[1:] > grid[:-1]).all()


def test_shift_above_one_spends_more_time_near_noise():
    t = torch.tensor([0.5])
    assert shift_time(t, 3.0) < 0.5 < shift_time(t, 1 / 3.0)
    assert torch.allclose(shift_time(t, 1.0), t)
    assert shift_time(t, 3.0).item() == pytest.approx(1 - 3 * 0.5 / (1 + 2 * 0.5))


def test_resolution_shift_grows_with_tokens_and_never_shrinks():
    assert resolution_shift(3.0, 1024, 1024) == 3.0
    assert resolution_shift(3.0, 4096, 1024) == pytest.approx(6.0)
    assert resolution_shift(3.0, 256, 1024) == 3.0


def test_train_time_is_seeded_and_inside_unit_interval():
    a = sample_train_time(1000, 2.0, torch.Generator().manual_seed(0))
    b = sample_train_time(1000, 2.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert ((a > 0) & (a < 1)).all()


def test_guidance_one_is_the_conditional_velocity():
    cond, uncond = torch.randn(2, 4), torch.randn(2, 4)
    both = torch.cat([cond, uncond])
    assert torch.allclose(guided(both, 1.0), cond)
    assert torch.allclose(guided(both, 3.0), uncond + 3 * (cond - uncond))


def test_image_guidance_one_is_plain_guidance_on_the_source_branches():
    both, source, empty = torch.randn(3, 2, 4)
    stacked = torch.cat([both, source, empty])
    assert torch.allclose(guided_edit(stacked, 7.0, 1.0), guided(torch.cat([both, source]), 7.0))


def test_image_guidance_pushes_away_from_the_branch_without_the_source():
    both, source, empty = torch.randn(3, 2, 4)
    stacked = torch.cat([both, source, empty])
    assert torch.allclose(guided_edit(stacked, 1.0, 3.0), both + 2 * (source - empty))


def solve(velocity, x0: torch.Tensor, times: torch.Tensor, solver: str = "euler") -> torch.Tensor:
    """Where a solve lands: its last step."""
    return list(ode_steps(velocity, x0, times, solver=solver))[-1].x


def test_euler_integrates_a_straight_flow_exactly():
    x0, x1 = torch.randn(3, 5), torch.randn(3, 5)
    out = solve(lambda x, t: x1 - x0, x0, time_grid(7, 2.5))
    assert torch.allclose(out, x1, atol=1e-6)


def test_each_step_says_how_far_it_is_and_points_at_the_clean_end_of_a_straight_flow():
    x0, x1 = torch.randn(3, 5), torch.randn(3, 5)
    steps = list(ode_steps(lambda x, t: x1 - x0, x0, time_grid(6, 3.0)))
    assert [(s.done, s.total) for s in steps] == [(i, 6) for i in range(1, 7)]
    assert all(torch.allclose(s.clean, x1, atol=1e-6) for s in steps)  # x_t + (1 − t)·v is x1 from anywhere
    assert not torch.allclose(steps[2].x, x1, atol=1e-2)  # while the state itself is still part noise


def test_heun_beats_euler_on_a_curved_flow():
    # dx/dt = 2t → x(1) = x(0) + 1; Euler underestimates, Heun (trapezoid) is exact for linear v(t).
    x0 = torch.zeros(1, 1)
    times = time_grid(4, 1.0)
    euler = solve(lambda x, t: 2 * t[:, None], x0, times, solver="euler")
    heun = solve(lambda x, t: 2 * t[:, None], x0, times, solver="heun")
    assert abs(heun.item() - 1.0) < abs(euler.item() - 1.0)


def test_unknown_solver_is_rejected_by_name():
    with pytest.raises(ValueError, match="rk4"):
        next(ode_steps(lambda x, t: x, torch.zeros(1, 1), time_grid(2, 1.0), solver="rk4"))


def test_greedy_and_seeded_sampling():
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    assert sample_token(logits, 0.0, 1.0, None).item() == 1
    draws = [sample_token(logits, 1.0, 1.0, torch.Generator().manual_seed(s)).item() for s in range(3)]
    again = [sample_token(logits, 1.0, 1.0, torch.Generator().manual_seed(s)).item() for s in range(3)]
    assert draws == again


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    gen = torch.Generator().manual_seed(0)
    draws = {sample_token(logits, 1.0, 0.5, gen).item() for _ in range(50)}
    assert draws == {0}
    assert math.isclose(sum(torch.softmax(logits, -1)[0].tolist()), 1.0, rel_tol=1e-6)
