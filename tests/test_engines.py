"""engines/: back-end fallback, engine cache keys, parity checks, export traps and the benchmark.

Everything here runs on CPU with the tiny random model; the TensorRT build itself is the one
`gpu` test at the end. TensorRT's place in the chain is exercised by swapping its builder, and
its export → save → warm-start path by a stand-in for the torch_tensorrt module.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engines import backends, bench, cache, parity, tensorrt
from engines.backends import Built, build_unit, build_units, engine_key
from engines.units import Bucket, WeightsHash, check_buckets, unit_specs

IMAGE = Bucket(1, 64, 64)
VIDEO = Bucket(17, 64, 64)


@pytest.fixture(scope="module")
def model(tiny_pipeline):
    return tiny_pipeline.model


@pytest.fixture(scope="module")
def specs(model):
    return unit_specs(model, torch.float32, [IMAGE])


def fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Fallback records as a `%(name)s: %(message)s` log line shows them."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name == "engines" and "trying" in r.getMessage()]


# -- back-end choice and fallback ---------------------------------------------------------------
def test_auto_falls_back_to_eager_without_cuda(model, monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="engines"):
        units = build_units(model, cache_dir=tmp_path, shapes=[IMAGE])

    assert {units.backends[n] for n in ("encoder", "visual", "decoder")} == {"eager"}
    lines = fallback_lines(caplog)
    assert "engines: tensorrt unavailable for visual (no CUDA device); trying torch.compile" in lines
    assert any(line.startswith("engines: torch.compile unavailable for visual (not used on CPU") for line in lines)
    assert all("\n" not in line for line in lines)
    assert "no CUDA device" in units.backends["visual_reason"]
    x = torch.randn(2, 16, 1, 16, 16)
    torch.testing.assert_close(units.visual(x), model.visual(x))


def test_eager_backend_is_the_models_own_path_with_no_fallback(model, caplog, tmp_path):
    with caplog.at_level(logging.INFO, logger="engines"):
        units = build_units(model, "eager", cache_dir=tmp_path, shapes=[IMAGE])
    assert units.backends == {"encoder": "eager", "visual": "eager", "decoder": "eager"}
    assert fallback_lines(caplog) == []
    pixels = torch.rand(1, 3, 1, 64, 64) * 2 - 1
    torch.testing.assert_close(units.vae_encode(pixels), model.vae.encode(pixels))


def test_unknown_backend_names_the_choices(model):
    with pytest.raises(ValueError, match=r"backend must be one of auto, tensorrt, compile, eager, got 'onnx'"):
        build_units(model, "onnx")


def test_model_in_training_mode_is_refused(model):
    model.train()
    try:
        with pytest.raises(ValueError, match=r"model\.eval\(\)"):
            build_units(model, "eager")
    finally:
        model.eval()


def test_unit_whose_compile_raises_falls_back_with_one_line_reason(model, monkeypatch, caplog, tmp_path):
    def explode(spec, ctx):
        raise RuntimeError("inductor exploded\nC++ compile log follows ...")

    monkeypatch.setitem(backends.BUILDERS, "compile", explode)
    with caplog.at_level(logging.INFO, logger="engines"):
        units = build_units(model, "compile", cache_dir=tmp_path, shapes=[IMAGE])

    assert units.backends["visual"] == "eager"
    assert "engines: torch.compile failed for visual (RuntimeError: inductor exploded); trying eager" in fallback_lines(
        caplog
    )
    assert units.backends["visual_reason"] == "torch.compile failed (RuntimeError: inductor exploded)"


def perturbed(module: torch.nn.Module, scale: float):
    """A unit that computes eager's output plus noise: a stand-in for a silently wrong engine."""

    def run(x: torch.Tensor) -> torch.Tensor:
        y = module(x)
        return y + scale * y.std() * torch.randn(y.shape, generator=torch.Generator().manual_seed(1))

    return run


def test_engine_failing_parity_is_discarded(model, monkeypatch, caplog, tmp_path):
    engine_file = tmp_path / "visual-engine.pt2"

    def wrong_engine(spec, ctx):
        engine_file.write_bytes(b"engine")
        return Built(dict.fromkeys(spec.input_shapes, perturbed(spec.module, 0.5)), files=(engine_file,))

    monkeypatch.setitem(backends.BUILDERS, "tensorrt", wrong_engine)
    with caplog.at_level(logging.INFO, logger="engines"):
        units = build_units(model, cache_dir=tmp_path, shapes=[IMAGE])

    assert units.backends["visual"] == "eager"
    assert not engine_file.exists()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "failed parity" in r.getMessage()]
    assert warnings and warnings[0].getMessage().startswith(
        "tensorrt failed parity for encoder (input (3, 1, 64, 64): cosine"
    )
    assert "engine discarded" in units.backends["visual_reason"]


def test_engine_that_raises_when_run_is_discarded(model, monkeypatch, caplog, tmp_path):
    engine_file = tmp_path / "engine.pt2"

    def broken_engine(spec, ctx):
        engine_file.write_bytes(b"engine")

        def run(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("TensorRT: invalid argument")

        return Built(dict.fromkeys(spec.input_shapes, run), files=(engine_file,))

    monkeypatch.setitem(backends.BUILDERS, "tensorrt", broken_engine)
    with caplog.at_level(logging.INFO, logger="engines"):
        units = build_units(model, cache_dir=tmp_path, shapes=[IMAGE])
    assert units.backends["decoder"] == "eager" and not engine_file.exists()
    assert "engines: tensorrt failed for decoder (RuntimeError: TensorRT: invalid argument); trying torch.compile" in (
        fallback_lines(caplog)
    )


def test_engine_passing_parity_is_used_and_a_cache_hit_says_so(model, monkeypatch, tmp_path):
    def cached_engine(spec, ctx):
        return Built(dict.fromkeys(spec.input_shapes, spec.module), cached=True)

    monkeypatch.setitem(backends.BUILDERS, "tensorrt", cached_engine)
    units = build_units(model, "tensorrt", cache_dir=tmp_path, shapes=[IMAGE])
    assert units.backends["decoder"] == "tensorrt (cached)"


def test_shape_outside_the_buckets_runs_eagerly(specs, caplog):
    spec = specs["visual"]
    calls = []
    router = backends.ShapeRouter(
        spec, {spec.input_shapes[0]: lambda x: calls.append(x.shape) or spec.module(x)}, backends.LOGGER
    )
    with caplog.at_level(logging.INFO, logger="engines"):
        router(torch.randn(2, 16, 1, 16, 16))  # the bucket: routed
        router(torch.randn(2, 16, 1, 32, 32))  # another size: eager, said once
        router(torch.randn(2, 16, 1, 32, 32))
        router(torch.randn(spec.max_batch + 1, 16, 1, 16, 16))  # beyond the engine's batch range: eager
    assert calls == [torch.Size([2, 16, 1, 16, 16])]
    said = [r.getMessage() for r in caplog.records if "running it eagerly" in r.getMessage()]
    assert len(said) == 2


def test_buckets_are_validated_against_the_vae(model):
    assert check_buckets(model.config, [(1, 64, 64), (17, 64, 64), (1, 64, 64)]) == (IMAGE, VIDEO)
    with pytest.raises(ValueError, match=r"frames must be 4·n\+1 .* got 2"):
        check_buckets(model.config, [(2, 64, 64)])
    with pytest.raises(ValueError, match=r"height must be a positive multiple of 8, got 60; try 56"):
        check_buckets(model.config, [(1, 60, 64)])


# -- engine cache keys -----------------------------------------------------------------------------
def test_cache_key_changes_with_weights(model, specs):
    spec = specs["visual"]
    before = engine_key(spec, spec.input_shapes[0])
    changed = dataclasses.replace(spec, weights=WeightsHash(_perturbed_copy(model.visual)))
    assert engine_key(changed, spec.input_shapes[0]) != before
    assert engine_key(spec, spec.input_shapes[0]) == before  # same inputs, same key


def _perturbed_copy(module: torch.nn.Module) -> torch.nn.Module:
    twin = copy.deepcopy(module)
    with torch.no_grad():
        next(twin.parameters()).add_(1e-3)
    return twin


def test_cache_key_changes_with_shape_dtype_versions_and_gpu(specs, monkeypatch):
    spec = specs["decoder"]
    key = engine_key(spec, spec.input_shapes[0])
    assert key == engine_key(spec, spec.input_shapes[0])
    assert key.path(Path("/c")) == engine_key(spec, spec.input_shapes[0]).path(Path("/c"))
    variants = [
        engine_key(spec, (16, 5, 16, 16)),
        engine_key(dataclasses.replace(spec, dtype=torch.bfloat16), spec.input_shapes[0]),
        dataclasses.replace(key, torch="2.14.0"),
        dataclasses.replace(key, torch_tensorrt="2.14.0"),
        dataclasses.replace(key, gpu="NVIDIA H200"),
        dataclasses.replace(key, batch=(1, 1, 8)),
    ]
    digests = {key.digest, *(v.digest for v in variants)}
    assert len(digests) == len(variants) + 1
    monkeypatch.setattr(tensorrt, "gpu_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert engine_key(spec, spec.input_shapes[0]).digest != key.digest


def test_encoder_and_decoder_share_one_vae_hash(specs):
    assert specs["encoder"].weights is specs["decoder"].weights
    assert specs["encoder"].weights.value == specs["decoder"].weights.value


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "engines"))
    assert cache.default_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv(cache.CACHE_ENV)
    assert cache.default_cache_dir() == Path.home() / ".cache" / "tuna_studio" / "engines"


def test_engine_files_are_written_atomically(tmp_path):
    target = tmp_path / "sub" / "unit.pt2"
    cache.write_atomically(target, lambda tmp: tmp.write_text("engine"))
    assert target.read_text() == "engine"
    with pytest.raises(OSError):
        cache.write_atomically(tmp_path / "broken.pt2", lambda tmp: (_ for _ in ()).throw(OSError("disk full")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


# -- parity ------------------------------------------------------------------------------------------
def test_identical_outputs_pass_both_metrics():
    y = torch.randn(2, 64, 32)
    assert parity.compare("cosine", y, y.clone()).passed
    assert parity.psnr(y, y.clone()) == math.inf


def test_perturbed_unit_fails_parity():
    features = torch.randn(2, 64, 32)
    noisy = features + 0.2 * torch.randn(features.shape, generator=torch.Generator().manual_seed(0))
    assert not parity.compare("cosine", noisy, features).passed
    pixels = torch.rand(1, 3, 1, 64, 64) * 2 - 1
    assert parity.psnr(pixels + 0.01, pixels) == pytest.approx(10 * math.log10(4 / 1e-4))  # 46 dB passes
    assert not parity.compare("psnr", pixels + 0.05, pixels).passed  # 32 dB fails


def test_the_worst_sample_decides():
    good = torch.randn(4, 128)
    bad = good.clone()
    bad[3] = -bad[3]  # one sample wrong, three exact
    assert parity.cosine_similarity(bad, good) == pytest.approx(-1.0)


def test_nan_output_fails_parity():
    y = torch.randn(1, 8, 16)
    broken = y.clone()
    broken[0, 0, 0] = float("nan")  # an fp16 overflow looks like this
    assert not parity.compare("cosine", broken, y).passed
    assert not parity.compare("psnr", broken, y).passed


def test_parity_check_runs_both_units(specs):
    spec = specs["visual"]
    x = spec.example(spec.input_shapes[0])
    assert parity.check(spec.module, spec.module, [x], "cosine").passed
    assert not parity.check(perturbed(spec.module, 0.5), spec.module, [x], "cosine").passed
    with pytest.raises(parity.ParityError, match="differs from eager's"):
        parity.check(lambda t: spec.module(t)[:, :1], spec.module, [x], "cosine")


# -- export traps (the part of the TensorRT path that runs on CPU) -------------------------------------
def test_exported_visual_attention_is_bidirectional(specs):
    spec = specs["visual"]
    x = spec.example(spec.input_shapes[0])
    program = tensorrt.export_unit(spec.module, x, spec.max_batch)
    assert tensorrt.causal_attention_nodes(program.graph_module) == []
    exported = program.module()
    changed = x.clone()
    changed[:, :, :, -1, -1] += 1.0  # only the last latent position
    with torch.no_grad():
        first_before, first_after = exported(x)[:, 0], exported(changed)[:, 0]
    assert not torch.allclose(first_before, first_after)  # the first token sees the last one


class _CausalAttention(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(x, x, x, is_causal=True)


def test_causal_attention_in_a_graph_is_found():
    program = torch.export.export(_CausalAttention(), (torch.randn(1, 2, 4, 8),))
    assert len(tensorrt.causal_attention_nodes(program.graph_module)) == 1


@pytest.mark.slow
def test_wan_vae_frame_cache_loop_exports_for_images_then_videos(model):
    specs = unit_specs(model, torch.float32, [IMAGE, VIDEO])
    for name in ("decoder", "encoder"):  # decode first: the causal cache matters most there
        spec = specs[name]
        for shape in spec.input_shapes:  # the 1-frame image bucket, then the video's chunks
            x = spec.example(shape, batch=2)
            exported = tensorrt.export_unit(spec.module, x, spec.max_batch).module()
            with torch.no_grad():
                torch.testing.assert_close(exported(x), spec.module(x))
                torch.testing.assert_close(exported(x[:1]), spec.module(x[:1]))  # batch stays dynamic


class StandInTorchTensorRT:
    """Plays torch_tensorrt on CPU: `dynamo.compile` returns the exported program's module.

    It lets the TensorRT path (export, settings, save to the cache, warm start) run here; only
    the engine build itself is TensorRT's and needs the GPU test below.
    """

    def __init__(self) -> None:
        self.compiled: list[dict] = []
        self.engines: dict[str, torch.nn.Module] = {}
        self.Input = lambda **shape: shape
        self.dynamo = types.SimpleNamespace(compile=self.compile)

    def compile(self, program, arg_inputs, device, **settings):
        self.compiled.append({"inputs": arg_inputs, **settings})
        return program.module()

    def save(self, engine, path, **kwargs):
        Path(path).write_text(str(len(self.engines)))
        self.engines[str(len(self.engines))] = engine

    def load(self, path):
        engine = self.engines[Path(path).read_text()]
        return types.SimpleNamespace(module=lambda: engine)


def test_tensorrt_path_exports_caches_and_warm_starts(model, monkeypatch, tmp_path):
    stand_in = StandInTorchTensorRT()
    monkeypatch.setitem(sys.modules, "torch_tensorrt", stand_in)
    monkeypatch.setattr(tensorrt, "unavailable_reason", lambda device: None)

    first = build_units(model, "tensorrt", cache_dir=tmp_path, shapes=[IMAGE])
    assert [first.backends[n] for n in ("encoder", "visual", "decoder")] == ["tensorrt"] * 3
    assert len(list(tmp_path.glob("*.pt2"))) == 3
    assert all(c["attn_bias_is_causal"] is False and c["min_block_size"] == 1 for c in stand_in.compiled)
    assert stand_in.compiled[1]["inputs"] == [  # the visual unit: x_t once per step, up to 4 images
        {
            "min_shape": (1, 16, 1, 16, 16),
            "opt_shape": (1, 16, 1, 16, 16),
            "max_shape": (4, 16, 1, 16, 16),
            "dtype": torch.float32,
        }
    ]

    again = build_units(model, "tensorrt", cache_dir=tmp_path, shapes=[IMAGE])
    assert [again.backends[n] for n in ("encoder", "visual", "decoder")] == ["tensorrt (cached)"] * 3
    assert len(stand_in.compiled) == 3  # nothing rebuilt
    x = torch.randn(2, 16, 1, 16, 16)
    torch.testing.assert_close(again.visual(x), model.visual(x))


@pytest.mark.slow
def test_compile_backend_matches_eager_on_cpu(specs, tmp_path):
    spec = specs["visual"]
    unit, label = build_unit(spec, "compile", cache_dir=tmp_path)
    assert label == "compile"
    x = torch.randn(2, *spec.input_shapes[0])
    with torch.no_grad():
        assert parity.cosine_similarity(unit(x), spec.module(x)) >= parity.FEATURE_COSINE_MIN


# -- benchmark ---------------------------------------------------------------------------------------
def test_bench_section_replaces_only_its_own_block():
    lead = "# Performance\n\nThe lead's text.\n"
    once = bench.replace_section(lead, "## GPU units\nold")
    assert once.startswith(lead.rstrip("\n")) and "old" in once
    twice = bench.replace_section(once + "\n## Later section\n", "## GPU units\nnew")
    assert "old" not in twice and "new" in twice
    assert twice.count(bench.SECTION_START) == 1 and twice.endswith("## Later section\n")
    assert bench.replace_section(None, "body") == f"{bench.SECTION_START}\nbody\n{bench.SECTION_END}\n"


def test_bench_runs_on_cpu_and_writes_its_section(tmp_path, capsys):
    out = tmp_path / "PERFORMANCE.md"
    out.write_text("# Performance\n")
    argv = ["--preset", "tiny", "--backends", "eager,tensorrt", "--runs", "1", "--warmup", "0"]
    argv += ["--steps", "2", "--e2e-runs", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text()
    assert text.startswith("# Performance\n") and bench.SECTION_START in text
    assert "| visual | 1 × 16×1×16×16 |" in text  # x_t once per step, one image
    assert "- tensorrt: unavailable: " in text  # no CUDA device here; no torch-tensorrt on a bare GPU
    assert "| eager |" in text  # the end-to-end row


# -- on a GPU ----------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and torch-tensorrt")
def test_tensorrt_engines_match_eager_and_load_from_cache(tiny_pipeline, tmp_path):
    pytest.importorskip("torch_tensorrt", reason="needs a CUDA GPU and torch-tensorrt")
    model = copy.deepcopy(tiny_pipeline.model).cuda().eval()
    first = build_units(model, "tensorrt", cache_dir=tmp_path, shapes=[IMAGE, VIDEO])
    assert [first.backends[n] for n in ("encoder", "visual", "decoder")] == ["tensorrt"] * 3
    again = build_units(model, "tensorrt", cache_dir=tmp_path, shapes=[IMAGE, VIDEO])
    assert [again.backends[n] for n in ("encoder", "visual", "decoder")] == ["tensorrt (cached)"] * 3
    latents = torch.randn(1, 16, 5, 8, 8, device="cuda")
    assert parity.psnr(again.vae_decode(latents), model.vae.decode(latents)) >= 30.0  # bf16 engine vs fp32 eager
