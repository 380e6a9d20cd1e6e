"""Back-end choice for each compiled unit: TensorRT, then torch.compile, then eager.

`build_unit` is the one interface: a unit and a back-end in, a callable and the back-end's name
out. It raises when that back-end cannot serve the unit (unavailable, failed to build, failed
parity), and `build_units` walks the chain on such errors, logging one line per fallback, so
the app always gets working units and can say which back-end runs each.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engines import parity, tensorrt
from engines.cache import EngineKey, default_cache_dir, write_atomically
from engines.parity import ParityError
from engines.units import UNIT_NAMES, Bucket, Shape, UnitSpec, check_buckets, default_buckets, unit_specs
from tuna_core.model import TunaModel
from tuna_core.pipeline import Units

BACKENDS = ("tensorrt", "compile", "eager")  # fastest first: the fallback order
CHOICES = ("auto", *BACKENDS)
DISPLAY = {"tensorrt": "tensorrt", "compile": "torch.compile", "eager": "eager"}
LOGGER = logging.getLogger("engines")

Unit = Callable[[torch.Tensor], torch.Tensor]


class UnavailableError(RuntimeError):
    """This back-end cannot run on this machine; the message is the reason, in one phrase."""


@dataclass
class Built:
    """What a builder made: one callable per per-sample input shape, and where it came from."""

    callables: dict[Shape, Unit]
    cached: bool = False  # every engine was loaded from disk, none built
    files: tuple[Path, ...] = ()  # engine files behind the callables (deleted if the check fails)


@dataclass(frozen=True)
class BuildContext:
    requested: str  # what the caller asked for: "auto" or a back-end name
    cache_dir: Path
    logger: logging.Logger


Builder = Callable[[UnitSpec, BuildContext], Built]


class ShapeRouter:
    """The built unit for the input shapes it was built for, the eager unit for anything else.

    Engines are specialised to their bucket and batch range; a request outside them (an unusual
    size, more images) still works, eagerly, and says so once per shape.
    """

    def __init__(self, spec: UnitSpec, routes: dict[Shape, Unit], logger: logging.Logger) -> None:
        self.name, self.eager, self.routes = spec.name, spec.module, routes
        self.max_batch, self.device = spec.max_batch, spec.device
        self.logger = logger
        self._reported: set[tuple[int, ...]] = set()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        route = self.routes.get(tuple(x.shape[1:]))
        if route is not None and 1 <= x.shape[0] <= self.max_batch:
            # float32 with canonical strides: what the engines were built and guarded for
            x = x.to(device=self.device, dtype=torch.float32).clone(memory_format=torch.contiguous_format)
            return route(x)
        if tuple(x.shape) not in self._reported:
            self._reported.add(tuple(x.shape))
            self.logger.info("no %s engine for input %s; running it eagerly", self.name, tuple(x.shape))
        return self.eager(x)


def engine_key(spec: UnitSpec, shape: Shape) -> EngineKey:
    return EngineKey(
        unit=spec.name,
        weights=spec.weights.value,
        input_shape=tuple(shape),
        batch=(1, spec.opt_batch, spec.max_batch),
        dtype=str(spec.dtype).removeprefix("torch."),
        torch=torch.__version__,
        torch_tensorrt=tensorrt.library_version(),
        gpu=tensorrt.gpu_name(spec.device),
        settings=tensorrt.SETTINGS_ID,
    )


def build_tensorrt(spec: UnitSpec, ctx: BuildContext) -> Built:
    """One engine per bucket, loaded from the cache when its key matches, else built and saved."""
    reason = tensorrt.unavailable_reason(spec.device)
    if reason:
        raise UnavailableError(reason)
    callables: dict[Shape, Unit] = {}
    files: list[Path] = []
    cached = True
    for shape in spec.input_shapes:
        path = engine_key(spec, shape).path(ctx.cache_dir)
        callables[shape], hit = _load_or_build(spec, shape, path, ctx.logger)
        cached = cached and hit
        files.append(path)
    return Built(callables, cached, tuple(files))


def _load_or_build(spec: UnitSpec, shape: Shape, path: Path, log: logging.Logger) -> tuple[Unit, bool]:
    """The engine for one bucket and whether it came from the cache (a new one is saved there)."""
    engine = _load_cached(path, spec.name, log)
    if engine is not None:
        return engine, True
    example = spec.example(shape)
    engine = tensorrt.build_engine(spec.module, example, opt_batch=spec.opt_batch, max_batch=spec.max_batch)
    write_atomically(path, lambda tmp: tensorrt.save_engine(engine, tmp, example, spec.max_batch))
    return engine, False


def compile_unavailable_reason(device: torch.device, requested: str) -> str | None:
    """Why torch.compile is not used here, or None.

    On CPU it is used only when asked for by name: inductor's C++ build takes tens of seconds
    per unit on a small machine and the tiny units gain little from it.
    """
    if device.type == "cpu":
        if requested != "compile":
            return 'not used on CPU unless asked for: slow to build, little gain; pass backend="compile"'
        compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
        if not any(c and shutil.which(c) for c in compilers):
            return "no C++ compiler on PATH for inductor's CPU kernels (install g++ or set CXX)"
    elif device.type == "cuda" and not _has_module("triton"):
        return "triton is not installed (inductor's GPU kernels need it)"
    return None


def build_compile(spec: UnitSpec, ctx: BuildContext) -> Built:
    """`torch.compile` (inductor); parity checking runs each bucket once, which is the warm-up."""
    reason = compile_unavailable_reason(spec.device, ctx.requested)
    if reason:
        raise UnavailableError(reason)
    compiled = torch.compile(spec.module)
    return Built(dict.fromkeys(spec.input_shapes, compiled))


BUILDERS: dict[str, Builder] = {"tensorrt": build_tensorrt, "compile": build_compile}  # eager needs no build


def build_unit(
    spec: UnitSpec,
    backend: str,
    *,
    requested: str | None = None,
    cache_dir: Path | None = None,
    logger: logging.Logger | None = None,
) -> tuple[Unit, str]:
    """Build `spec` with exactly `backend`; returns (callable, back-end name).

    The name is the back-end, with " (cached)" when every TensorRT engine came from disk.
    Raises `UnavailableError` when the back-end cannot run here, `ParityError` when its outputs
    differ from eager's on the fixed example, or whatever the build or the check raised; the
    engine files of a unit that fails its check are deleted.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "eager":
        return spec.module, "eager"
    ctx = BuildContext(requested or backend, cache_dir or default_cache_dir(), logger or LOGGER)
    built = BUILDERS[backend](spec, ctx)
    try:
        for shape, unit in built.callables.items():
            score = parity.check(unit, spec.module, [spec.example(shape)], spec.metric)
            if not score.passed:
                raise ParityError(f"input {shape}: {score}")
    except Exception:  # an engine that is wrong, or cannot even run, must not be loaded again
        for path in built.files:
            path.unlink(missing_ok=True)
        raise
    return ShapeRouter(spec, built.callables, ctx.logger), f"{backend} (cached)" if built.cached else backend


def build_units(
    model: TunaModel,
    backend: str = "auto",
    *,
    dtype: torch.dtype | None = None,
    cache_dir: str | Path | None = None,
    shapes: list[Bucket | tuple[int, int, int]] | None = None,
    logger: logging.Logger | None = None,
) -> Units:
    """The pipeline's units on the fastest back-end that works here, per unit.

    `backend`: "auto" tries tensorrt → torch.compile → eager; a back-end name starts the chain
    there. `dtype`: engine precision, default bf16 on CUDA (the model's own dtype elsewhere).
    `shapes`: (frames, height, width) buckets to build for, default the config's image and video.
    `backends` in the result names each unit's back-end, plus "<unit>_reason" for any fallback.
    """
    if backend not in CHOICES:
        raise ValueError(f"backend must be one of {', '.join(CHOICES)}, got {backend!r}")
    if model.training:
        raise ValueError("the model is in training mode; call model.eval() before build_units")
    log = logger or LOGGER
    device = model.device
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else model.dtype)
    buckets = check_buckets(model.config, default_buckets(model.config) if shapes is None else shapes)
    specs = unit_specs(model, dtype, buckets)
    chain = BACKENDS if backend == "auto" else BACKENDS[BACKENDS.index(backend) :]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    units: dict[str, Unit] = {}
    report: dict[str, str] = {}
    for name in UNIT_NAMES:
        units[name], report[name], reasons = _first_working(specs[name], chain, backend, root, log)
        if reasons:
            report[f"{name}_reason"] = "; ".join(reasons)
    log.info("%s in %s", ", ".join(f"{n}={report[n]}" for n in UNIT_NAMES), str(dtype).removeprefix("torch."))
    return Units(units["encoder"], units["visual"], units["decoder"], report)


def _first_working(
    spec: UnitSpec, chain: tuple[str, ...], requested: str, root: Path, log: logging.Logger
) -> tuple[Unit, str, list[str]]:
    """Walk `chain` until a back-end builds; one log line per fallback, with its reason.

    The chain ends with eager, which is the reference itself: if that fails, the error is real.
    """
    reasons: list[str] = []
    for here, after in itertools.pairwise(chain):
        try:
            unit, label = build_unit(spec, here, requested=requested, cache_dir=root, logger=log)
            return unit, label, reasons
        except UnavailableError as err:
            level, verb, detail = logging.INFO, "unavailable", str(err)
        except ParityError as err:
            level, verb, detail = logging.WARNING, "failed parity", f"{err}; engine discarded"
        except Exception as err:  # a compiler failure of any kind must not take the app down
            level, verb, detail = logging.WARNING, "failed", f"{type(err).__name__}: {tensorrt.first_line(err)}"
        log.log(level, "%s %s for %s (%s); trying %s", DISPLAY[here], verb, spec.name, detail, DISPLAY[after])
        reasons.append(f"{DISPLAY[here]} {verb} ({detail})")
    unit, label = build_unit(spec, chain[-1], requested=requested, cache_dir=root, logger=log)
    return unit, label, reasons


def _load_cached(path: Path, name: str, log: logging.Logger) -> Unit | None:
    """A cached engine, or None when there is none or it cannot be read (it is then rebuilt)."""
    if not path.exists():
        return None
    try:
        return tensorrt.load_engine(path)
    except Exception as err:  # a stale or truncated file: rebuild rather than fail
        log.warning("cached %s engine %s unreadable (%s); rebuilding", name, path.name, tensorrt.first_line(err))
        path.unlink(missing_ok=True)
        return None


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None
