"""The profiler: peak memory and step time of one (preset, task, method, batch) per fresh process.

Every measurement runs in its own process, forked from a server that has already imported
torch, transformers and diffusers (multiprocessing's forkserver, one task per child). A peak
therefore never leaks from one run into the next, and a run costs about a second instead of
the several seconds a new interpreter needs to import those libraries.

Memory:
    cuda  ``torch.cuda.max_memory_allocated()`` over the timed steps (weights included).
    cpu   the kernel's resident high-water mark (VmHWM), reset through /proc/self/clear_refs
          before every timed step, minus the RSS before the model was built. glibc's malloc is
          pinned (fixed mmap threshold, no dynamic growth) so large freed blocks really go back
          to the OS and the RSS follows the live tensors.

Time: the median of `steps` timed steps after `warmup` untimed ones. On a GPU, wall-clock after a
synchronize. On a CPU with one thread, the process's CPU time (`time.process_time`): another job
on the same cores stretches wall-clock by whatever the scheduler gives it, not CPU time, and on
an idle core the two agree. With more threads, wall-clock (CPU time would add the threads up).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tuna_core.planner.methods import Task, Technique, apply_method, method, not_applicable

PROMPT = "a big red circle at the top left and a small blue square in the center on a white background"
QUESTION = "What color is the circle?"
ANSWER = "red"

_PRELOAD = ["torch", "transformers", "diffusers", "tuna_core.model", "tuna_core.pipeline", "tuna_core.planner.profile"]


@dataclass(frozen=True)
class ProfileSpec:
    """One measurement. `sampling_steps` None: the model's default ODE steps (t2i);
    `new_tokens`: decoded tokens per chat answer."""

    preset: str
    task: str
    method: str
    batch: int
    device: str = "cpu"
    steps: int = 3
    warmup: int = 1
    threads: int = 1
    sampling_steps: int | None = None
    new_tokens: int = 16
    seed: int = 0


@dataclass(frozen=True)
class Measurement:
    """Median peak bytes and seconds per step; `error` set (and numbers 0) when the run failed."""

    spec: ProfileSpec
    peak_bytes: int
    seconds: float
    peaks: tuple[int, ...] = ()
    times: tuple[float, ...] = ()
    error: str | None = None
    clock: str = "wall"  # "wall" or "cpu" (see the module docstring)

    @property
    def ok(self) -> bool:
        return self.error is None


# -- model and workloads (run inside the child) ---------------------------------------------------
def build_model(preset: str, device: torch.device, dtype: torch.dtype):
    """A random-weight model and a word-level tokenizer (full-size presets have no tokenizer
    folder; the Shapes World words give valid ids for every vocabulary)."""
    from tuna_core.checkpoint import load_model
    from tuna_core.config import ModelConfig
    from tuna_core.model import TunaModel
    from tuna_core.tokenizer import TunaTokenizer

    if preset == "tiny":
        model, tok = load_model(preset="tiny")
        return model.to(dtype), tok
    from tuna_core.data.tasks import vocabulary

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:  # initialise where the weights will live: a 7B model would take minutes on the CPU
            model = TunaModel(ModelConfig.preset(preset))
    finally:
        torch.set_default_dtype(previous)
    return model.eval(), TunaTokenizer.word_level(vocabulary())


def _train_step(model, tok, spec: ProfileSpec, device: torch.device) -> Callable[[], None]:
    """One joint step: b text-to-image samples (flow loss) + b image questions (text loss),
    one backward, one AdamW update of everything but the frozen VAE (latents are cached)."""
    from tuna_core.layout import generation_layout, understanding_layout
    from tuna_core.model import SequenceBatch

    cfg = model.config
    grid = cfg.latent_grid(1, cfg.image_size, cfg.image_size)
    n, b = cfg.num_visual_tokens(1, cfg.image_size, cfg.image_size), spec.batch
    special = tok.special
    gen = SequenceBatch.from_layouts([generation_layout(special, tok.encode(PROMPT), n)] * b).to(device)
    qa = understanding_layout(special, [n], tok.encode(QUESTION), tok.encode(ANSWER))
    und = SequenceBatch.from_layouts([qa] * b).to(device)
    generator = torch.Generator().manual_seed(spec.seed)
    target = torch.randn((b, cfg.latent_channels, *grid), generator=generator).to(device)
    clean = torch.randn((b, cfg.latent_channels, *grid), generator=generator).to(device)
    model.vae.requires_grad_(False)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with autocast:
            flow = model(gen, [], target, generator)["flow"]
            text = model(und, [clean])["text"]
            (flow + 0.2 * text).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _t2i_step(model, tok, spec: ProfileSpec, device: torch.device) -> Callable[[], None]:
    """b images from one prompt through the real pipeline (prefill, CFG ODE, VAE decode), one draw each."""
    from tuna_core.config import Limits
    from tuna_core.pipeline import TunaPipeline

    pipe = TunaPipeline(model, tok, limits=Limits(max_num_images=spec.batch))
    return lambda: pipe.text_to_image(
        PROMPT, num_images=spec.batch, steps=spec.sampling_steps, seed=spec.seed, candidates=1
    )


def _chat_step(model, tok, spec: ProfileSpec, device: torch.device) -> Callable[[], None]:
    """b image questions answered together: VAE-encode b images, prefill, decode `new_tokens`
    greedily without stopping at [eos], so every run decodes the same number of tokens."""
    from transformers import DynamicCache

    from tuna_core.layout import understanding_layout
    from tuna_core.model import SequenceBatch

    cfg = model.config
    b, side = spec.batch, cfg.image_size
    pixels = torch.rand((b, 3, 1, side, side), generator=torch.Generator().manual_seed(spec.seed)) * 2 - 1
    n = cfg.num_visual_tokens(1, side, side)
    layout = understanding_layout(tok.special, [n], tok.encode(QUESTION))
    batch = SequenceBatch.from_layouts([layout] * b).to(device)

    @torch.no_grad()
    def step() -> None:
        latents = model.vae.encode(pixels.to(device))
        x = model.embed(batch.ids, [model.visual(latents)], batch.visual_positions)
        cache = DynamicCache(config=model.llm.config)
        out = model.llm(
            inputs_embeds=x.to(model.dtype),
            attention_mask=batch.mask,
            position_ids=batch.position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        token = out.logits[:, -1].argmax(-1)
        for i in range(spec.new_tokens - 1):
            token = model.next_logits(cache, token, len(layout) + i).argmax(-1)

    return step


# -- one measurement ----------------------------------------------------------------------------------
def _pin_malloc() -> None:
    """glibc: a fixed 64 KiB mmap threshold and trim threshold, so freed tensors leave the RSS."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 * 1024)
    libc.mallopt(m_trim_threshold, 128 * 1024)


def _rss_bytes(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}; CPU memory profiling needs Linux")


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS


def _peak(device: torch.device, baseline: int) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return _rss_bytes("VmHWM") - baseline


def run_one(spec: ProfileSpec) -> Measurement:
    """Build, apply the method, warm up, then time and measure `spec.steps` steps (in this process)."""
    reason = not_applicable(spec.method, spec.task, spec.device)
    if reason:
        raise ValueError(f"method {spec.method!r} does not apply to {spec.task} on {spec.device}: {reason}")
    device = torch.device(spec.device)
    _pin_malloc()
    torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    baseline = 0 if device.type == "cuda" else _rss_bytes()
    dtype = torch.bfloat16 if device.type == "cuda" and spec.task != Task.TRAIN.value else torch.float32
    build_on = torch.device("cpu") if method(spec.method).uses(Technique.OFFLOAD_WEIGHTS) else device
    model, tok = build_model(spec.preset, build_on, dtype)
    apply_method(model, spec.method, device=device)
    if spec.task == Task.TRAIN.value:
        step = _train_step(model, tok, spec, device)
    elif spec.task == Task.T2I.value:
        step = _t2i_step(model, tok, spec, device)
    else:
        step = _chat_step(model, tok, spec, device)
    try:
        for _ in range(spec.warmup):
            step()
        cpu_clock = device.type == "cpu" and spec.threads == 1
        clock = time.process_time if cpu_clock else time.perf_counter
        peaks, times = [], []
        for _ in range(spec.steps):
            _reset_peak(device)
            start = clock()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(clock() - start)
            peaks.append(_peak(device, baseline))
    except torch.OutOfMemoryError:
        return Measurement(spec, 0, 0.0, error="out of memory")
    peak, seconds = int(statistics.median(peaks)), statistics.median(times)
    return Measurement(spec, peak, seconds, tuple(peaks), tuple(times), clock="cpu" if cpu_clock else "wall")


# -- many measurements, each in a fresh process -------------------------------------------------------
def _context(device: str) -> multiprocessing.context.BaseContext:
    """A fresh interpreter per run on CUDA (spawn): on a lent H200 every child forked from the
    preloaded server failed with "Cannot re-initialize CUDA in forked subprocess". On CPU,
    children fork from the preloaded server, which saves the imports of every run."""
    if torch.device(device).type == "cuda" or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def profile_runs(
    specs: Sequence[ProfileSpec], *, progress: bool = True, desc: str = "profiling", journal: Path | None = None
) -> list[Measurement]:
    """Run each spec in a fresh child process (one at a time, so runs do not compete).

    A child that dies (the OS killed it, a CUDA error) becomes a Measurement with `error`; a
    bug in the spec itself (ValueError) is raised here. With a `journal` (JSON lines), a spec
    already in it is not run again, and each new run is appended the moment it finishes: a plan
    cut short (a timeout, a lease that ends) resumes where it stopped.
    """
    from tqdm import tqdm

    done = {m.spec: m for m in read_journal(journal)} if journal is not None else {}
    if journal is not None and journal.exists() and not journal.read_bytes().endswith(b"\n"):
        with journal.open("a") as f:
            f.write("\n")  # close a line cut by a kill, so the next run starts a line of its own
    ctx = _context(specs[0].device if specs else "cpu")
    results = []
    bar = tqdm(specs, desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for spec in bar:
        if spec in done:
            results.append(done[spec])
            continue
        bar.set_postfix_str(f"{spec.method} b={spec.batch}")
        measurement = _run_isolated(spec, ctx)
        if journal is not None:
            with journal.open("a") as f:
                f.write(json.dumps(asdict(measurement)) + "\n")
        results.append(measurement)
    return results


def _run_isolated(spec: ProfileSpec, ctx: multiprocessing.context.BaseContext) -> Measurement:
    """`run_one` in a child of its own; a child that dies becomes a Measurement with `error`."""
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1) as pool:
        try:
            return pool.submit(run_one, spec).result()
        except BrokenProcessPool:
            return Measurement(spec, 0, 0.0, error="the profiling process died (out of host memory?)")


def read_journal(path: Path) -> list[Measurement]:
    """The runs a journal holds (none when it does not exist yet). A kill mid-write can leave a
    cut last line; it is skipped, so that run is simply made again."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        spec = ProfileSpec(**row.pop("spec"))
        runs.append(Measurement(spec, **{**row, "peaks": tuple(row["peaks"]), "times": tuple(row["times"])}))
    return runs
