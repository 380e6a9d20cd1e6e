"""A plan: profile every applicable method, fit, judge under the budget, verify at b_max.

1. profile each method at the configured batch sizes (one fresh process per run)
2. fit M(b), T(b) on every other size; R² on the sizes held out of the fit
3. b_max and predicted throughput per method; PAPAYA's verdict against `none`
4. measure each method once more at its b_max (or, above `measure_limit`, reuse the largest
   profiled batch ≤ b_max) — the "measured throughput" column
5. recommend the highest predicted throughput, unless the runs at b_max measured another method
   more than 10 % faster: the fit extrapolates T(b) past the profiled batches, and on a CPU a
   large batch can fall off that line (caches), so the real run has the last word
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuna_core.planner.estimate import GpuSpec, estimate_fit, model_shape
from tuna_core.planner.fit import (
    HEADROOM,
    MethodFit,
    Verdict,
    fit_method,
    format_bytes,
    recommend,
    verdicts,
)
from tuna_core.planner.methods import METHODS, Task, methods_for, not_applicable
from tuna_core.planner.profile import Measurement, ProfileSpec, profile_runs

# Start above b = 1: there a step's peak is set by fixed costs (the optimizer's temporaries,
# convolution workspaces), not by activations, and the line does not hold yet. Chat starts at 8:
# below that each decoded token's matmuls have too few rows to keep the core busy, so time per
# answer still falls with b and T(b) bends (held-out R² 0.962 from b = 2; 0.993 from b = 8).
DEFAULT_BATCHES: dict[str, tuple[int, ...]] = {
    "train": (4, 6, 8, 12, 16, 24, 32),
    "t2i": (2, 4, 8, 12, 16, 24),
    "chat": (8, 16, 24, 32, 48, 64),
}
UNITS = {"train": "samples/s", "t2i": "images/s", "chat": "answers/s"}
MEASURED_TOLERANCE = 0.1  # run-to-run noise of a 3-step measurement: within it, the model's pick stays


@dataclass(frozen=True)
class PlanConfig:
    """What to profile. `methods` None: every method that applies to the task and device."""

    preset: str = "tiny"
    task: str = "train"
    device: str = "cpu"
    budget_bytes: int = 16 * 2**30
    batch_sizes: tuple[int, ...] | None = None
    methods: tuple[str, ...] | None = None
    steps: int = 3
    warmup: int = 1
    threads: int = 1
    sampling_steps: int | None = None
    new_tokens: int = 16
    measure_limit: int = 64  # the largest b_max that is run for real; above it, reuse a profiled batch

    def __post_init__(self) -> None:
        Task(self.task)  # raises on an unknown task
        sizes = self.sizes
        if len(sizes) < 4 or len(set(sizes)) != len(sizes) or min(sizes) < 1:
            raise ValueError(f"batch sizes {sizes} must be ≥ 4 distinct positive sizes (every other one is held out)")
        for name in self.methods or ():
            reason = not_applicable(name, self.task, self.device)
            if reason:
                raise ValueError(f"method {name!r} does not apply to {self.task} on {self.device}: {reason}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self.batch_sizes or DEFAULT_BATCHES[self.task]))

    @property
    def method_names(self) -> list[str]:
        return list(self.methods) if self.methods else methods_for(self.task, self.device)

    def spec(self, method: str, batch: int) -> ProfileSpec:
        return ProfileSpec(
            preset=self.preset,
            task=self.task,
            method=method,
            batch=batch,
            device=self.device,
            steps=self.steps,
            warmup=self.warmup,
            threads=self.threads,
            sampling_steps=self.sampling_steps,
            new_tokens=self.new_tokens,
        )


def split_batches(sizes: Sequence[int]) -> tuple[list[int], list[int]]:
    """Every other size (first and last included when the count is odd) fits; the rest are held out."""
    ordered = sorted(sizes)
    return ordered[0::2], ordered[1::2]


@dataclass
class MethodRow:
    """One table row: the fit, the verdict, and the check at b_max."""

    name: str
    fit: MethodFit | None = None
    verdict: Verdict | None = None
    measurements: list[Measurement] = field(default_factory=list)
    check: Measurement | None = None  # the extra run at b_max, when one was needed
    measured_batch: int = 0
    measured_at_b_max: bool = False
    measured_throughput: float | None = None
    measured_peak: int | None = None
    note: str = ""  # why the method has no fit, or how the check was made


@dataclass
class Plan:
    config: PlanConfig
    rows: list[MethodRow]
    skipped: dict[str, str]  # method → why it does not apply
    recommended: str | None
    estimate: str | None = None  # the GPU an analytic plan assumed; None for a measured plan
    overruled: str | None = None  # the fit's pick, when the runs at b_max overruled it

    def to_json(self) -> dict[str, Any]:
        """Exactly {"recommended", "budget_bytes", "methods": [...]}, one entry per fitted method."""
        methods = []
        for row in self.rows:
            if row.fit is None or row.verdict is None:
                continue
            methods.append(
                {
                    "name": row.name,
                    "alpha": row.fit.memory.slope,
                    "beta": row.fit.memory.intercept,
                    "gamma": row.fit.time.slope,
                    "delta": row.fit.time.intercept,
                    "r2_memory": _finite(row.fit.r2_memory),
                    "r2_time": _finite(row.fit.r2_time),
                    "b_max": row.verdict.b_max,
                    "throughput_predicted": row.verdict.throughput,
                    "throughput_measured": row.measured_throughput,
                }
            )
        return {"recommended": self.recommended, "budget_bytes": self.config.budget_bytes, "methods": methods}

    def measurements_csv(self) -> str:
        """Every run: method, batch, median peak bytes and seconds, then each step's values."""
        lines = ["method,batch,peak_bytes,seconds,clock,step_peaks,step_seconds,error"]
        for row in self.rows:
            runs = list(row.measurements) + ([row.check] if row.check is not None else [])
            for m in runs:
                peaks = " ".join(map(str, m.peaks))
                times = " ".join(f"{t:.4f}" for t in m.times)
                fields = [
                    row.name,
                    m.spec.batch,
                    m.peak_bytes,
                    f"{m.seconds:.4f}",
                    m.clock,
                    peaks,
                    times,
                    m.error or "",
                ]
                lines.append(",".join(map(str, fields)))
        return "\n".join(lines) + "\n"

    def table(self) -> str:
        """A fixed-width table, the verdicts and the recommendation, for the terminal and docs."""
        cfg = self.config
        unit = UNITS[cfg.task]
        head = (
            f"{'method':<17}{'α/sample':>11}{'β':>11}{'γ s/sample':>11}{'δ s':>8}{'R² mem':>8}{'R² time':>8}"
            f"{'b_max':>7}{'pred ' + unit:>18}{'meas ' + unit:>18}{'@b':>6}{'peak@b':>11}"
        )
        fit_on, held_out = split_batches(cfg.sizes)
        source = (
            f"ANALYTIC ESTIMATE for a {self.estimate}, not a measurement"
            if self.estimate
            else f"measured at batches {', '.join(map(str, cfg.sizes))}; fit on {fit_on}, R² on {held_out}"
        )
        lines = [
            f"PAPAYA plan: {cfg.preset} {cfg.task} on {cfg.device}, budget {format_bytes(cfg.budget_bytes)} "
            f"(b_max uses {HEADROOM:.0%} of it); {source}",
            head,
            "-" * len(head),
        ]
        for row in self.rows:
            if row.fit is None or row.verdict is None:
                lines.append(f"{row.name:<17}{row.note}")
                continue
            f, v = row.fit, row.verdict
            meas = f"{row.measured_throughput:.3g}" if row.measured_throughput is not None else "-"
            at = f"{row.measured_batch}{'' if row.measured_at_b_max else '*'}" if row.measured_batch else "-"
            peak = format_bytes(row.measured_peak) if row.measured_peak is not None else "-"
            lines.append(
                f"{row.name:<17}{format_bytes(f.memory.slope):>11}{format_bytes(f.memory.intercept):>11}"
                f"{f.time.slope:>11.4f}{f.time.intercept:>8.3f}{_r2(f.r2_memory):>8}{_r2(f.r2_time):>8}"
                f"{v.b_max:>7}{v.throughput:>18.3g}{meas:>18}{at:>6}{peak:>11}"
            )
        if any(row.measured_batch and not row.measured_at_b_max for row in self.rows):
            lines.append("(* measured at the largest profiled batch ≤ b_max, since b_max exceeds --measure-limit)")
        for name, reason in self.skipped.items():
            lines.append(f"{name:<17}not applicable: {reason}")
        lines.append("")
        for row in self.rows:
            if row.verdict is not None:
                lines.append(f"{row.name}: {'helps' if row.verdict.helps else 'cannot help'} — {row.verdict.reason}")
        if self.recommended is None:
            lines.append("recommendation: nothing fits this budget; lower the batch's resolution or raise the budget")
        else:
            best = next(r.verdict for r in self.rows if r.name == self.recommended and r.verdict is not None)
            lines.append(
                f"recommendation: {self.recommended} at batch {best.b_max} ({best.throughput:.3g} {unit} predicted)"
            )
            if self.overruled is not None:
                rows = {r.name: r for r in self.rows}
                pick, chosen = rows[self.overruled], rows[self.recommended]
                lines.append(
                    f"  measured over predicted: the fit picked {pick.name} at batch {pick.measured_batch}, which "
                    f"measured {pick.measured_throughput:.3g} {unit} against {chosen.measured_throughput:.3g} for "
                    f"{chosen.name}"
                )
        return "\n".join(lines)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _r2(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "n/a"


def estimated_plan(cfg: PlanConfig, gpu: GpuSpec) -> Plan:
    """The analytic lines of `estimate.py` in a Plan (no profiling, no measured columns, R² n/a)."""
    fits = [
        estimate_fit(model_shape(cfg.preset), cfg.task, name, gpu, **_estimate_kwargs(cfg)) for name in cfg.method_names
    ]
    results = verdicts(fits, cfg.budget_bytes)
    rows = [MethodRow(f.name, fit=f, verdict=v, note="analytic estimate") for f, v in zip(fits, results, strict=True)]
    reasons = {name: not_applicable(name, cfg.task, cfg.device) for name in METHODS if name not in cfg.method_names}
    return Plan(cfg, rows, {n: r for n, r in reasons.items() if r}, recommend(results), estimate=gpu.name)


def _estimate_kwargs(cfg: PlanConfig) -> dict[str, int]:
    return {"sampling_steps": cfg.sampling_steps} if cfg.sampling_steps else {}


def make_plan(
    cfg: PlanConfig,
    *,
    progress: bool = True,
    profiled: Sequence[Measurement] | None = None,
    journal: Path | None = None,
) -> Plan:
    """Steps 1–5 of the module docstring; `profiled` reuses step-1 runs of an earlier plan, and a
    `journal` keeps every run as it finishes and skips the runs it already holds."""
    names = cfg.method_names
    skipped = {
        name: reason for name in METHODS if name not in names and (reason := not_applicable(name, cfg.task, cfg.device))
    }
    fit_sizes, held_sizes = split_batches(cfg.sizes)
    # 1. profile
    specs = [cfg.spec(name, b) for name in names for b in cfg.sizes]
    measured = (
        profiled if profiled is not None else profile_runs(specs, progress=progress, desc="profiling", journal=journal)
    )
    rows = []
    for name in names:
        row = MethodRow(name, measurements=[m for m in measured if m.spec.method == name])
        # 2. fit
        points = {m.spec.batch: (m.spec.batch, m.peak_bytes, m.seconds) for m in row.measurements if m.ok}
        fit_pts = [points[b] for b in fit_sizes if b in points]
        held_pts = [points[b] for b in held_sizes if b in points]
        if len(fit_pts) < 2 or len(held_pts) < 2:
            errors = sorted({m.error for m in row.measurements if not m.ok})
            row.note = f"no fit: only {len(points)} of {len(cfg.sizes)} runs succeeded ({'; '.join(errors)})"
        else:
            row.fit = fit_method(name, fit_pts, held_pts)
        rows.append(row)
    # 3. verdicts against the baseline (the first method when `none` was not profiled)
    fits = [r.fit for r in rows if r.fit is not None]
    if fits:
        baseline = "none" if any(f.name == "none" for f in fits) else fits[0].name
        for v in verdicts(fits, cfg.budget_bytes, baseline=baseline):
            next(r for r in rows if r.name == v.name).verdict = v
    # 4. measure at b_max
    _measure_at_b_max(cfg, rows, progress, journal)
    # 5. recommend
    predicted = recommend([r.verdict for r in rows if r.verdict is not None])
    at_b_max = {r.name: r.measured_throughput for r in rows if r.measured_at_b_max and r.measured_throughput}
    recommended = overrule_by_measurement(predicted, at_b_max)
    return Plan(cfg, rows, skipped, recommended, overruled=predicted if recommended != predicted else None)


def overrule_by_measurement(
    predicted: str | None, measured: dict[str, float], tolerance: float = MEASURED_TOLERANCE
) -> str | None:
    """The fit's pick, unless another method measured more than `tolerance` faster at its b_max.

    So the pick always measures within `tolerance` of the best method that was run at its b_max.
    """
    if predicted not in measured:
        return predicted
    fastest = max(measured, key=measured.__getitem__)
    return fastest if measured[fastest] > (1 + tolerance) * measured[predicted] else predicted


def _measure_at_b_max(cfg: PlanConfig, rows: list[MethodRow], progress: bool, journal: Path | None) -> None:
    todo: list[tuple[MethodRow, ProfileSpec]] = []
    for row in rows:
        if row.verdict is None or row.verdict.b_max < 1:
            continue
        b = row.verdict.b_max
        profiled = {m.spec.batch: m for m in row.measurements if m.ok}
        if b in profiled:
            _record(row, profiled[b], at_b_max=True)
        elif b <= cfg.measure_limit:
            todo.append((row, cfg.spec(row.name, b)))
        elif below := [s for s in profiled if s <= b]:
            _record(row, profiled[max(below)], at_b_max=False)
    specs = [spec for _, spec in todo]
    results = profile_runs(specs, progress=progress, desc="measuring at b_max", journal=journal) if todo else []
    for (row, _), m in zip(todo, results, strict=True):
        row.check = m
        if m.ok:
            _record(row, m, at_b_max=True)
        else:
            row.note = f"run at b_max failed: {m.error}"


def _record(row: MethodRow, m: Measurement, *, at_b_max: bool) -> None:
    row.measured_batch = m.spec.batch
    row.measured_at_b_max = at_b_max
    row.measured_throughput = m.spec.batch / m.seconds
    row.measured_peak = m.peak_bytes


def plot_plan(plan: Plan, path: str | Path) -> Path:
    """Predicted lines vs measured points per method: memory (left) and step time (right).

    Filled markers were fitted, hollow ones held out, crosses are the b_max checks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = plan.config
    fit_sizes, _ = split_batches(cfg.sizes)
    fig, (ax_m, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    highest = 0.0
    for i, row in enumerate(plan.rows):
        if row.fit is None:
            continue
        color = f"C{i}"
        ok = [m for m in row.measurements if m.ok]
        top = max([m.spec.batch for m in ok] + [row.measured_batch])
        xs = [0, top]
        highest = max([highest, row.fit.memory(top)] + [m.peak_bytes for m in ok])
        panels = ((ax_m, row.fit.memory, "peak", row.fit.r2_memory), (ax_t, row.fit.time, "time", row.fit.r2_time))
        for ax, line, value, r2 in panels:
            scale = 2**20 if value == "peak" else 1.0
            ax.plot(xs, [line(x) / scale for x in xs], color=color, lw=1, label=f"{row.name} (held-out R² {r2:.3f})")
            for m in ok:
                y = (m.peak_bytes if value == "peak" else m.seconds) / scale
                filled = m.spec.batch in fit_sizes
                ax.scatter(m.spec.batch, y, color=color, facecolors=color if filled else "none", s=28, zorder=3)
            if row.measured_batch and row.measured_batch not in {m.spec.batch for m in ok}:
                y = (row.measured_peak if value == "peak" else row.measured_batch / row.measured_throughput) / scale
                ax.scatter(row.measured_batch, y, color=color, marker="x", s=40, zorder=3)
    if HEADROOM * cfg.budget_bytes <= 3 * highest:  # a far-away budget line would flatten the data
        ax_m.axhline(HEADROOM * cfg.budget_bytes / 2**20, color="gray", ls="--", lw=0.8, label="0.8 × budget")
    ax_m.set(xlabel="batch size", ylabel="peak memory (MiB)", title="memory: predicted vs measured")
    clocks = {m.clock for row in plan.rows for m in row.measurements if m.ok}
    seconds = "CPU seconds per step (1 thread)" if clocks == {"cpu"} else "seconds per step"
    ax_t.set(xlabel="batch size", ylabel=seconds, title="time: predicted vs measured")
    for ax in (ax_m, ax_t):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{cfg.preset} {cfg.task} on {cfg.device} (filled: fitted, hollow: held out, ×: at b_max)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
