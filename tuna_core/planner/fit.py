"""PAPAYA's model: pure functions from profiled (batch, memory, time) points to a choice.

Per method, peak memory and step time are close to linear in the batch size b:

    M(b) = α·b + β        (β: weights, optimizer state, workspace; α: activations per sample)
    T(b) = γ·b + δ        (δ: per-step overhead, e.g. weight transfers; γ: compute per sample)

so the largest batch under a budget is b_max = floor((0.8·budget − β)/α) (20 % headroom for
fragmentation and what the profile did not see) and the throughput there is b_max / T(b_max).
The method with the highest such throughput wins; one that only lowers α pays only if the
batch it unlocks beats its time overhead (`verdicts` says which and why).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

HEADROOM = 0.8  # PAPAYA keeps 20 % of the budget free

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(text: str) -> int:
    """'16GiB' → 17179869184, '512MiB', '8GB' (decimal), '1.5GiB', '1000' (bytes).

    Units are case-insensitive; KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000.
    """
    match = _BYTES_RE.match(text) if isinstance(text, str) else None
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"cannot read memory budget {text!r}; write a number and a unit such as 16GiB, 512MiB or 8GB")
    value = float(match.group(1)) * _UNITS[unit]
    if value < 1:
        raise ValueError(f"memory budget {text!r} is zero; give a positive size such as 16GiB")
    return int(value)


def format_bytes(n: float) -> str:
    """Binary units for tables: 1536 → '1.5 KiB'."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{sign}{n:.1f} {unit}" if unit != "B" else f"{sign}{n:.0f} B"
        n /= 1024
    return f"{sign}{n:.1f} TiB"


@dataclass(frozen=True)
class Line:
    """y = slope·x + intercept."""

    slope: float
    intercept: float

    def __call__(self, x: float) -> float:
        return self.slope * x + self.intercept


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Line:
    """Ordinary least squares for one feature (closed form), needing two distinct x values."""
    if len(xs) != len(ys):
        raise ValueError(f"got {len(xs)} batch sizes but {len(ys)} measurements; pass one measurement per batch size")
    if len(set(xs)) < 2:
        raise ValueError(f"a line needs at least two distinct batch sizes, got {sorted(set(xs))}; profile more sizes")
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    return Line(slope, my - slope * mx)


def r_squared(line: Line, xs: Sequence[float], ys: Sequence[float]) -> float:
    """1 − SS_res/SS_tot of `line` on (xs, ys) — points that need not be the fitted ones.

    On held-out points this can be negative (worse than predicting their mean). With all ys
    equal SS_tot is 0: a perfect prediction scores 1.0, any error −inf.
    """
    if len(ys) < 2:
        raise ValueError(f"R² needs at least two points, got {len(ys)}; hold out more batch sizes")
    mean = sum(ys) / len(ys)
    ss_tot = sum((y - mean) ** 2 for y in ys)
    ss_res = sum((y - line(x)) ** 2 for x, y in zip(xs, ys, strict=True))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else -math.inf
    return 1.0 - ss_res / ss_tot


def max_batch(memory: Line, budget_bytes: float, *, headroom: float = HEADROOM, limit: int = 4096) -> int:
    """b_max = floor((headroom·budget − β)/α), 0 when even b = 1 does not fit, at most `limit`.

    A fitted α ≤ 0 (memory that does not grow with the batch, seen only with noisy data over
    too narrow a range) would mean an unbounded batch; `limit` caps it.
    """
    room = headroom * budget_bytes - memory.intercept
    if memory.slope <= 0:
        return limit if room >= 0 else 0
    return max(0, min(limit, math.floor(room / memory.slope)))


def throughput(time: Line, batch: int) -> float:
    """Samples per second at `batch` under T(b) = γ·b + δ; 0 for an empty batch."""
    if batch <= 0:
        return 0.0
    seconds = time(batch)
    if seconds <= 0:
        raise ValueError(f"predicted step time {seconds:.4g} s at batch {batch} is not positive; the time fit is bad")
    return batch / seconds


@dataclass(frozen=True)
class MethodFit:
    """One method's fitted lines and their R² on held-out batch sizes."""

    name: str
    memory: Line
    time: Line
    r2_memory: float
    r2_time: float

    def b_max(self, budget_bytes: float, *, limit: int = 4096) -> int:
        return max_batch(self.memory, budget_bytes, limit=limit)

    def predicted_throughput(self, budget_bytes: float, *, limit: int = 4096) -> float:
        return throughput(self.time, self.b_max(budget_bytes, limit=limit))


def fit_method(
    name: str,
    fit_points: Sequence[tuple[int, float, float]],
    held_out: Sequence[tuple[int, float, float]],
) -> MethodFit:
    """Fit M and T on (batch, bytes, seconds) `fit_points`; score R² on `held_out` ones."""
    bs, mem, sec = zip(*fit_points, strict=True)
    memory, time = fit_line(bs, mem), fit_line(bs, sec)
    hb, hm, hs = zip(*held_out, strict=True)
    return MethodFit(name, memory, time, r_squared(memory, hb, hm), r_squared(time, hb, hs))


@dataclass(frozen=True)
class Verdict:
    """Whether a method pays under a budget compared with the baseline, and why (one line)."""

    name: str
    b_max: int
    throughput: float
    helps: bool
    reason: str


def cannot_help(candidate: MethodFit, baseline: MethodFit, budget_bytes: float, *, limit: int = 4096) -> str | None:
    """PAPAYA's condition: None when `candidate` beats `baseline` under the budget, else why not.

    A method trades time for memory. It only pays if the batch it unlocks gives more
    throughput than its overhead costs: b_c/T_c(b_c) > b_0/T_0(b_0). As b grows its throughput
    approaches 1/γ_c, so if 1/γ_c ≤ the baseline's throughput no budget can make it pay.
    """
    b_c, b_0 = candidate.b_max(budget_bytes, limit=limit), baseline.b_max(budget_bytes, limit=limit)
    if b_c < 1:
        fixed = format_bytes(candidate.memory.intercept)
        return f"does not fit: β = {fixed} plus one sample exceeds {HEADROOM:.0%} of the budget"
    if b_0 < 1:
        return None  # the baseline does not fit at all: anything that fits helps
    x_c, x_0 = throughput(candidate.time, b_c), throughput(baseline.time, b_0)
    if x_c > x_0:
        return None
    if b_c <= b_0:
        return f"unlocks no larger batch (b_max {b_c} vs {b_0}) and is slower: {x_c:.3g} vs {x_0:.3g}/s"
    ceiling = 1 / candidate.time.slope if candidate.time.slope > 0 else math.inf
    why = f"unlocks b={b_c} (vs {b_0}) but its time overhead costs more than that gains: {x_c:.3g} vs {x_0:.3g}/s"
    if ceiling <= x_0:
        why += f"; even unlimited memory caps it at 1/γ = {ceiling:.3g}/s"
    return why


def verdicts(
    fits: Sequence[MethodFit], budget_bytes: float, *, baseline: str = "none", limit: int = 4096
) -> list[Verdict]:
    """A verdict per method against `baseline` (which is judged on whether it fits at all)."""
    by_name = {f.name: f for f in fits}
    if baseline not in by_name:
        raise ValueError(f"baseline method {baseline!r} was not profiled; profiled: {', '.join(by_name)}")
    base = by_name[baseline]
    out = []
    for fit in fits:
        b = fit.b_max(budget_bytes, limit=limit)
        x = throughput(fit.time, b)
        if fit.name == baseline:
            reason = "baseline" if b >= 1 else cannot_help(fit, fit, budget_bytes, limit=limit)
            out.append(Verdict(fit.name, b, x, b >= 1, reason or "baseline"))
            continue
        why = cannot_help(fit, base, budget_bytes, limit=limit)
        base_b = base.b_max(budget_bytes, limit=limit)
        if why is None:
            why = (
                f"fits where the baseline does not (b_max {b})"
                if base_b < 1
                else f"pays: b={b} gives {x:.3g}/s vs {throughput(base.time, base_b):.3g}/s"
            )
            out.append(Verdict(fit.name, b, x, True, why))
        else:
            out.append(Verdict(fit.name, b, x, False, why))
    return out


def recommend(results: Sequence[Verdict], *, prefer: str = "none", tolerance: float = 0.0) -> str | None:
    """The method with the highest predicted throughput among those that fit (first on ties).

    With a `tolerance` (e.g. 0.1 for analytic estimates, whose error is about that), `prefer`
    is kept unless the best beats it by more than that share: no int8 or offloading for a gain
    the estimate cannot resolve.
    """
    fitting = [v for v in results if v.b_max >= 1]
    if not fitting:
        return None
    best = max(fitting, key=lambda v: v.throughput)
    preferred = next((v for v in fitting if v.name == prefer), None)
    if preferred is not None and best.throughput <= (1 + tolerance) * preferred.throughput:
        return preferred.name
    return best.name
