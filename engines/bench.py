"""Benchmark the compiled units per back-end, and text-to-image end to end.

    python -m engines.bench --preset tiny --runs 20
    python -m engines.bench --preset tuna-1.5b --size 512 --frames 49 --runs 20 --out docs/PERFORMANCE.md

Per unit and bucket: median latency over `--runs` timed calls after `--warmup` calls (CUDA
events on a GPU, perf_counter on CPU) for eager, torch.compile and TensorRT, their speed-ups,
the peak GPU memory the calls add and the build time (export + compile, or the cache load).
Then `text_to_image` at `--size`, `--steps` steps with guidance, through each back-end's units.
Models have random weights (`TunaModel(config)`): timing does not depend on what they draw.
`--out` rewrites only this benchmark's marked section of that file.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch

from engines import tensorrt
from engines.backends import BACKENDS, DISPLAY, UnavailableError, build_unit
from engines.parity import ParityError
from engines.units import UNIT_NAMES, Bucket, check_buckets, unit_specs
from tuna_core.config import ModelConfig
from tuna_core.model import TunaModel
from tuna_core.pipeline import TunaPipeline, Units
from tuna_core.tokenizer import TunaTokenizer

SECTION_START = "<!-- engines-bench:start -->"
SECTION_END = "<!-- engines-bench:end -->"
PROMPT = "a red circle above a blue square on a grey background"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
E2E_TARGET_S = 1.5  # tuna-1.5b, 512×512, 50 steps with guidance, on an H100
UNIT_TARGET_SPEEDUP = 1.5  # TensorRT over eager bf16, per unit


@dataclass
class UnitRun:
    unit: str
    input: str  # batch × per-sample shape
    backend: str
    label: str = ""  # what build_unit said ("tensorrt (cached)"), empty when it did not build
    build_s: float | None = None
    median_ms: float | None = None
    peak_mib: float | None = None  # GPU memory the timed calls added over what was allocated before
    error: str = ""


@dataclass
class EndToEnd:
    backend: str
    total_s: float | None = None
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str = ""


def bench_model(preset: str, device: torch.device, dtype: torch.dtype) -> tuple[TunaModel, TunaTokenizer]:
    """A random-weight model of `preset` and a word tokenizer covering `PROMPT`.

    Full-size presets have no tokenizer folder here; the config keeps its real vocabulary size
    (so embedding memory is real) and the dummy tokenizer's ids fall inside it.
    """
    config = ModelConfig.preset(preset)
    tokenizer = TunaTokenizer.word_level(PROMPT.split())
    if tokenizer.vocab_size > config.llm["vocab_size"]:
        config = dataclasses.replace(config, llm={**config.llm, "vocab_size": tokenizer.vocab_size})
    with device:  # initialise on the device: random init of billions of weights on CPU takes minutes
        model = TunaModel(config)
    return model.to(dtype).eval(), tokenizer


def median_ms(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, runs: int, warmup: int) -> float:
    """Median latency in ms: CUDA events around each call on a GPU, perf_counter on CPU."""
    times: list[float] = []
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        for _ in range(runs):
            if x.is_cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn(x)
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_and_memory(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, runs: int, warmup: int
) -> tuple[float, float | None]:
    """Median ms, and the GPU memory in MiB the calls added at their peak (None on CPU).

    Counts PyTorch's allocator only: TensorRT's own workspace, if it allocates outside it, is missed.
    """
    if not x.is_cuda:
        return median_ms(fn, x, runs, warmup), None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    ms = median_ms(fn, x, runs, warmup)
    return ms, (torch.cuda.max_memory_allocated() - base) / 2**20


def bench_units(
    model: TunaModel,
    buckets: Sequence[Bucket],
    backends: Sequence[str],
    dtype: torch.dtype,
    *,
    runs: int,
    warmup: int,
    cache_dir: Path | None,
    logger: logging.Logger,
) -> tuple[list[UnitRun], dict[str, Units]]:
    """Build every unit with every back-end; time each bucket. Also returns the units per back-end."""
    specs = unit_specs(model, dtype, buckets)
    runs_out: list[UnitRun] = []
    units: dict[str, Units] = {}
    for backend in backends:
        built: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        for name in UNIT_NAMES:
            spec = specs[name]
            rows = [UnitRun(name, _shape_text(spec.opt_batch, s), backend) for s in spec.input_shapes]
            runs_out += rows
            try:
                start = time.perf_counter()
                fn, label = build_unit(spec, backend, cache_dir=cache_dir, logger=logger)
                build_s = time.perf_counter() - start
            except (UnavailableError, ParityError) as err:
                kind = "unavailable" if isinstance(err, UnavailableError) else "failed parity"
                _fail(rows, f"{kind}: {err}")
                continue
            except Exception as err:  # report it in the table, keep measuring the others
                _fail(rows, f"failed: {type(err).__name__}: {tensorrt.first_line(err)}")
                continue
            built[name] = fn
            for row, shape in zip(rows, spec.input_shapes, strict=True):
                row.label, row.build_s = label, build_s if backend != "eager" else None
                row.median_ms, row.peak_mib = time_and_memory(fn, spec.example(shape), runs, warmup)
        if len(built) == len(UNIT_NAMES):
            units[backend] = Units(built["encoder"], built["visual"], built["decoder"], {})
    return runs_out, units


def bench_text_to_image(
    model: TunaModel,
    tokenizer: TunaTokenizer,
    units: dict[str, Units],
    *,
    size: int,
    steps: int,
    guidance: float,
    runs: int,
) -> list[EndToEnd]:
    """Wall time of `text_to_image` (one warm-up, then the median of `runs`) per back-end's units."""
    results = []
    for backend, unit_set in units.items():
        pipeline = TunaPipeline(model, tokenizer, units=unit_set)
        result = EndToEnd(backend)
        try:
            totals: list[tuple[float, dict[str, float]]] = []
            for i in range(runs + 1):
                start = time.perf_counter()
                out = pipeline.text_to_image(PROMPT, seed=i, steps=steps, guidance=guidance, height=size, width=size)
                if i:  # the first call is the warm-up
                    totals.append((time.perf_counter() - start, out.timings))
            result.total_s, result.stages = sorted(totals, key=lambda item: item[0])[len(totals) // 2]
        except Exception as err:  # report it in the table, keep the unit figures
            result.error = f"{type(err).__name__}: {tensorrt.first_line(err)}"
        results.append(result)
    return results


def render(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype, rows: list[UnitRun], e2e: list[EndToEnd]
) -> str:
    """This benchmark's section of PERFORMANCE.md: how it was run, the unit table, end to end."""
    lines = [
        "## GPU units: TensorRT vs torch.compile vs eager (`engines/`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `python -m engines.bench {' '.join(args.argv)}`.",
        "",
        f"- Device: {_device_text(device)}",
        f"- Versions: {_versions_text()}",
        f"- Preset {args.preset} with random weights, {str(dtype).removeprefix('torch.')}; median of {args.runs} "
        f"runs after {args.warmup} warm-up calls; build = export + compile (or cache load) + parity check.",
        "",
        "| unit | input (batch × sample) | eager ms | torch.compile ms | tensorrt ms | compile × eager "
        "| tensorrt × eager | tensorrt × compile | build s (compile / tensorrt) "
        "| peak GPU MiB (eager / compile / trt) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for unit, shape in dict.fromkeys((row.unit, row.input) for row in rows):
        by = {row.backend: row for row in rows if (row.unit, row.input) == (unit, shape)}
        ms = {b: by[b].median_ms if b in by and not by[b].error else None for b in BACKENDS}
        builds = " / ".join(_build_text(by.get(b)) for b in ("compile", "tensorrt"))
        peaks = " / ".join(_num(by[b].peak_mib if b in by else None, 0) for b in ("eager", "compile", "tensorrt"))
        lines.append(
            f"| {unit} | {shape} | {_num(ms['eager'], 2)} | {_num(ms['compile'], 2)} | {_num(ms['tensorrt'], 2)} "
            f"| {_ratio(ms['eager'], ms['compile'])} | {_ratio(ms['eager'], ms['tensorrt'])} "
            f"| {_ratio(ms['compile'], ms['tensorrt'])} | {builds} | {peaks} |"
        )
    notes = dict.fromkeys(f"{DISPLAY[row.backend]}: {row.error}" for row in rows if row.error)
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    lines += [
        "",
        f"End to end, `text_to_image` at {args.size}×{args.size}, {args.steps} steps, guidance {args.guidance} "
        f"(median of {args.e2e_runs} after one warm-up; the LLM and flow head run eagerly in every row):",
        "",
        "| back-end | total (s) | prefill (s) | denoise (s) | decode (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for run in e2e:
        if run.error:
            lines.append(f"| {DISPLAY[run.backend]} | failed: {run.error} | | | |")
            continue
        stage = [_num(run.stages.get(k), 3) for k in ("prefill", "denoise", "decode")]
        lines.append(f"| {DISPLAY[run.backend]} | {_num(run.total_s, 3)} | {' | '.join(stage)} |")
    lines += ["", _targets_text(args, device, rows, e2e)]
    return "\n".join(lines)


def replace_section(existing: str | None, body: str) -> str:
    """`existing` with this benchmark's marked section replaced by `body` (appended if absent)."""
    block = f"{SECTION_START}\n{body.rstrip()}\n{SECTION_END}\n"
    if not existing:
        return block
    start, end = existing.find(SECTION_START), existing.find(SECTION_END)
    if start != -1 and end > start:
        after = existing[end + len(SECTION_END) :].removeprefix("\n")
        return existing[:start] + block + after
    return existing.rstrip("\n") + "\n\n" + block


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engines.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=("tiny", "tuna-1.5b", "tuna-7b"))
    parser.add_argument("--size", type=int, help="square image side in pixels (default: the preset's)")
    parser.add_argument("--frames", type=int, default=1, help="also time a video bucket of this many frames")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per unit (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per unit before timing")
    parser.add_argument("--backends", default=",".join(reversed(BACKENDS)), help="comma-separated, in table order")
    parser.add_argument("--dtype", choices=tuple(DTYPES), help="default: bf16 on a GPU, fp32 on CPU")
    parser.add_argument("--steps", type=int, default=50, help="denoising steps for the end-to-end run")
    parser.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--e2e-runs", type=int, default=3, help="timed text_to_image calls (0 skips it)")
    parser.add_argument("--cache-dir", type=Path, help="engine cache (default $TUNA_ENGINE_CACHE or ~/.cache/…)")
    parser.add_argument("--out", type=Path, help="markdown file whose engines-bench section is rewritten")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        parser.error(f"--backends takes a comma-separated subset of {','.join(BACKENDS)}, got {args.backends!r}")
    if args.runs < 1 or args.warmup < 0 or args.e2e_runs < 0:
        parser.error("--runs must be ≥ 1 and --warmup, --e2e-runs ≥ 0")
    args.backend_list, args.argv = backends, list(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger = logging.getLogger("engines")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype] if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    model, tokenizer = bench_model(args.preset, device, dtype)
    args.size = args.size or model.config.image_size
    shapes = [(1, args.size, args.size)] + ([(args.frames, args.size, args.size)] if args.frames > 1 else [])
    buckets = check_buckets(model.config, shapes)

    rows, units = bench_units(
        model,
        buckets,
        args.backend_list,
        dtype,
        runs=args.runs,
        warmup=args.warmup,
        cache_dir=args.cache_dir,
        logger=logger,
    )
    e2e = []
    if args.e2e_runs:
        e2e = bench_text_to_image(
            model, tokenizer, units, size=args.size, steps=args.steps, guidance=args.guidance, runs=args.e2e_runs
        )
    section = render(args, device, dtype, rows, e2e)
    print(section)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(replace_section(args.out.read_text() if args.out.exists() else None, section))
        print(f"\nwrote the engines-bench section of {args.out}")
    return 0


# -- helpers ----------------------------------------------------------------------------------------
def _fail(rows: list[UnitRun], error: str) -> None:
    for row in rows:
        row.error = error


def _build_text(row: UnitRun | None) -> str:
    if row is None or row.error or row.build_s is None:
        return "–"
    return f"{row.build_s:.1f}{' (cached)' if row.label.endswith('(cached)') else ''}"


def _median(rows: list[UnitRun], like: UnitRun, backend: str) -> float | None:
    for row in rows:
        if (row.unit, row.input, row.backend) == (like.unit, like.input, backend) and not row.error:
            return row.median_ms
    return None


def _shape_text(batch: int, shape: Sequence[int]) -> str:
    return f"{batch} × {'×'.join(map(str, shape))}"


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio(reference: float | None, value: float | None) -> str:
    return "" if reference is None or value is None else f"{reference / value:.2f}×"


def _device_text(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU, {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def _versions_text() -> str:
    names = ("torch", "torch-tensorrt", "transformers", "diffusers")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join([*found, f"Python {platform.python_version()}"])


def _targets_text(args: argparse.Namespace, device: torch.device, rows: list[UnitRun], e2e: list[EndToEnd]) -> str:
    """The H100 targets, checked only where this run measured them."""
    if device.type != "cuda" or args.preset != "tuna-1.5b":
        return (
            f"Targets (TensorRT ≥ {UNIT_TARGET_SPEEDUP}× eager bf16 per unit and faster than torch.compile; "
            f"tuna-1.5b 512×512, 50 steps with guidance ≤ {E2E_TARGET_S} s end to end) need tuna-1.5b on an H100: "
            "not measured by this run."
        )
    verdicts = []
    for row in rows:
        if row.backend == "tensorrt" and not row.error:
            eager, compiled = _median(rows, row, "eager"), _median(rows, row, "compile")
            fast = eager is not None and row.median_ms is not None and eager / row.median_ms >= UNIT_TARGET_SPEEDUP
            beats = compiled is not None and row.median_ms is not None and row.median_ms < compiled
            verdicts.append(f"{row.unit} {row.input}: {'met' if fast and beats else 'missed'}")
    best = min((r.total_s for r in e2e if r.total_s is not None), default=None)
    e2e_verdict = "not measured" if best is None else f"{best:.3f} s ({'met' if best <= E2E_TARGET_S else 'missed'})"
    units_verdict = "; ".join(verdicts) or "TensorRT did not build"
    return f"Targets on {torch.cuda.get_device_name(device)}: units {units_verdict}; end to end {e2e_verdict}."


if __name__ == "__main__":
    sys.exit(main())
