"""Analytic PAPAYA lines for GPUs we cannot profile here — estimates, never measurements.

Parameters are counted on the meta-device model (nothing allocated); activations per token
follow the layer shapes (Korthikanti et al. 2022, "Reducing Activation Recomputation", counted
for this model's layers); times are FLOPs at an assumed 35 % of the GPU's dense bf16 peak plus
bytes over HBM or PCIe. The output is the same `MethodFit` the profiler produces (R² is NaN: there
is nothing to score), so the same `verdicts`/`recommend` choose. A GPU run of
`python -m tuna_core plan --device cuda` replaces every number here with a measured one.

Assumptions (each a named constant below): training keeps fp32 master weights, fp32 gradients
and two fp32 AdamW moments (16 B per trainable parameter) under bf16 autocast, the frozen VAE
stays on the device in fp32; serving holds bf16 weights; int8 stores Linear weights in one byte
plus one bf16 scale per output channel; optimum-quanto 0.2.7 has no int8-weight kernel (its Marlin
kernels are for fp8 and int4), so every matmul dequantizes its weight first: 15 % more compute time
and 2.5× the weight traffic of memory-bound decoding, plus one float weight alive at a time; offloading
moves the offloaded weights over PCIe at every forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tuna_core.config import Limits, ModelConfig
from tuna_core.model import TunaModel
from tuna_core.planner.fit import Line, MethodFit, Verdict, parse_bytes, recommend, verdicts
from tuna_core.planner.methods import Task, Technique, apply_method, method, methods_for

MFU = 0.35  # achieved share of dense peak FLOPs
INT8_SLOWDOWN = 1.15  # compute-time factor of quanto's int8 weights vs bf16 (it dequantizes per matmul)
INT8_TRAFFIC = 2.5  # weight bytes moved per matmul vs bf16: read int8 (1), write bf16 (2), read it (2)
STEP_OVERHEAD_S = 0.005  # kernel launches per denoising / decoding step
ADAM_BYTES = 16  # fp32 weight + grad + two moments per trainable parameter
VAE_MAPS = 12  # feature maps the VAE keeps alive at its widest stage (rough)
ESTIMATE_TOLERANCE = 0.1  # keep `none` unless another method is estimated > 10 % faster
PROMPT_TOKENS, QUESTION_TOKENS, ANSWER_TOKENS = 20, 6, 2  # the profiler's prompt, question, answer (+ eos)


@dataclass(frozen=True)
class GpuSpec:
    """Vendor-sheet figures: memory, dense bf16/fp16 tensor TFLOPs, HBM and host-link GB/s."""

    name: str
    memory_bytes: int
    tflops: float
    hbm_gbps: float
    pcie_gbps: float


SPACES_GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("T4 16GB", 16 * 2**30, 65.0, 320.0, 12.0),
    GpuSpec("A10G 24GB", 24 * 2**30, 70.0, 600.0, 25.0),
    GpuSpec("L40S 48GB", 48 * 2**30, 362.0, 864.0, 25.0),
    GpuSpec("A100 80GB", 80 * 2**30, 312.0, 1935.0, 25.0),
)
GENERIC_GPU = GpuSpec("generic PCIe-4 GPU", 24 * 2**30, 100.0, 800.0, 25.0)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model, counted once (tied weights once)."""

    config: ModelConfig
    params: dict[str, int]  # per part (TunaModel.parts)
    int8_weights: dict[str, int]  # Linear weight elements int8 would store in one byte
    int8_channels: dict[str, int]  # their output channels (one scale each)
    embedding: int  # LLM input embedding elements (LLM params outside the decoder layers' matmuls)
    largest_module: int  # params of the biggest module with its own weights (offload's working set)

    @property
    def total(self) -> int:
        return sum(self.params.values())


def model_shape(preset_or_model: str | TunaModel) -> ModelShape:
    """Count a preset on the meta device (no memory, no init time), or an existing model."""
    if isinstance(preset_or_model, str):
        with torch.device("meta"):
            model = TunaModel(ModelConfig.preset(preset_or_model))
    else:
        model = preset_or_model
    tied = model.llm.config.tie_word_embeddings
    params, weights, channels = {}, {}, {}
    for name, part in model.parts().items():
        params[name] = sum(p.numel() for p in part.parameters())
        linears = [
            m
            for n, m in part.named_modules()
            if isinstance(m, nn.Linear) and name != "vae" and not (tied and n.endswith("lm_head"))
        ]
        weights[name] = sum(m.weight.numel() for m in linears)
        channels[name] = sum(m.out_features for m in linears)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    embedding = model.llm.get_input_embeddings().weight.numel()
    return ModelShape(model.config, params, weights, channels, embedding, largest)


# -- activations per token (bytes) -------------------------------------------------------------------
def _decoder_saved(h: int, kv: int, inter: int, act: int = 2) -> int:
    """One Qwen2 layer, `act`-byte activations (bf16 autocast: 2): fp32 norm inputs 2·4h; inputs of
    q/k/v, o, gate/up (3h); q, k, v (h + 2kv); gate, up, SiLU(gate), their product (4I)."""
    return 8 * h + act * (3 * h + h + 2 * kv + 4 * inter)


def _encoder_saved(h: int, inter: int, act: int = 2) -> int:
    """One SigLIP or flow-head block: fp32 norm inputs 2·4h; qkv/o/fc1 inputs 3h; q, k, v 3h; fc1
    output and GELU output 2I."""
    return 8 * h + act * (3 * h + 3 * h + 2 * inter)


def _scores(heads: int, length: int, act: int) -> int:
    """Per token and layer, attention scores and probabilities (heads × length each) — only where
    SDPA falls back to its math kernel (the CPU with a boolean mask); fused GPU kernels keep none."""
    return 2 * act * heads * length if act == 4 else 0


def _transient(h: int, inter: int, dtype_bytes: int) -> int:
    """Inference keeps one layer's intermediates at a time: residual, norm and three MLP-wide tensors."""
    return dtype_bytes * (4 * h + 3 * inter)


@dataclass(frozen=True)
class _Dims:
    layers: int
    h: int
    kv: int
    inter: int
    enc_layers: int
    enc_h: int
    enc_inter: int
    enc_heads: int
    head_layers: int
    head_h: int
    head_inter: int
    head_heads: int
    tokens: int  # visual tokens per image at the default size
    vae_width: tuple[int, int]  # (decoder, encoder) widest channels at half resolution (after 2×2 patchify)
    pixels: int  # pixels per image at that stage


def _dims(cfg: ModelConfig) -> _Dims:
    llm, enc = cfg.llm, cfg.rep_encoder
    heads = llm["num_attention_heads"]
    kv = llm["num_key_value_heads"] * llm["hidden_size"] // heads
    patch = int(cfg.vae.get("patch_size") or 1)
    return _Dims(
        layers=llm["num_hidden_layers"],
        h=llm["hidden_size"],
        kv=kv,
        inter=llm["intermediate_size"],
        enc_layers=enc["num_hidden_layers"],
        enc_h=enc["hidden_size"],
        enc_inter=enc["intermediate_size"],
        enc_heads=enc["num_attention_heads"],
        head_layers=cfg.head.num_layers,
        head_h=cfg.head.hidden_size,
        head_inter=int(cfg.head.hidden_size * cfg.head.mlp_ratio),
        head_heads=cfg.head.num_heads,
        tokens=cfg.num_visual_tokens(1, cfg.image_size, cfg.image_size),
        vae_width=(int(cfg.vae.get("decoder_base_dim") or cfg.vae["base_dim"]), int(cfg.vae["base_dim"])),
        pixels=(cfg.image_size // patch) ** 2,
    )


# -- the lines ------------------------------------------------------------------------------------------
def estimate_fit(
    shape: ModelShape, task: str, name: str, gpu: GpuSpec, *, sampling_steps: int = 50, dtype_bytes: int = 2
) -> MethodFit:
    """α, β (bytes) and γ, δ (seconds) of `name` for `task` on `gpu`, from shapes alone.

    `dtype_bytes` is the activation dtype (2: bf16 on a GPU, 4: fp32 on a CPU) and, when serving,
    the weight dtype too.
    """
    m, d = method(name), _dims(shape.config)
    ckpt, int8 = m.uses(Technique.CHECKPOINT), m.uses(Technique.INT8)
    off_w, off_a = m.uses(Technique.OFFLOAD_WEIGHTS), m.uses(Technique.OFFLOAD_ACTIVATIONS)
    flops_per_s = gpu.tflops * 1e12 * MFU
    matmul_params = {  # parameters each token multiplies by (embeddings are lookups)
        "llm": shape.params["llm"] - shape.embedding,
        "rep_encoder": shape.params["rep_encoder"],
        "flow_head": shape.params["flow_head"],
    }
    n = d.tokens
    if Task(task) is Task.TRAIN:
        act = dtype_bytes  # bf16 autocast on a GPU, fp32 on a CPU
        gen_len, qa_len = 1 + PROMPT_TOKENS + 2 + n + 1, 2 + n + 1 + QUESTION_TOKENS + ANSWER_TOKENS
        llm_tokens = gen_len + qa_len
        enc_tokens, head_tokens = 2 * n, n  # x_t and the clean image; the head sees the target only
        trainable = shape.total - shape.params["vae"]
        beta = ADAM_BYTES * trainable + 4 * shape.params["vae"]
        heads = shape.config.llm["num_attention_heads"]
        llm_layer = sum(
            t * (_decoder_saved(d.h, d.kv, d.inter, act) + _scores(heads, t, act)) for t in (gen_len, qa_len)
        )
        full = (
            d.layers * llm_layer
            + enc_tokens * d.enc_layers * (_encoder_saved(d.enc_h, d.enc_inter, act) + _scores(d.enc_heads, n, act))
            + head_tokens
            * d.head_layers
            * (_encoder_saved(d.head_h, d.head_inter, act) + _scores(d.head_heads, n, act))
        )
        kept = 4 * (
            llm_tokens * d.layers * d.h + enc_tokens * d.enc_layers * d.enc_h + head_tokens * d.head_layers * d.head_h
        )
        saved = kept if ckpt else full
        alpha = (0 if off_a else saved) + (llm_layer if ckpt or off_a else 0)  # a layer recomputed / not yet copied
        flops = 6 * (matmul_params["llm"] * llm_tokens + matmul_params["rep_encoder"] * enc_tokens)
        flops += 6 * matmul_params["flow_head"] * head_tokens
        gamma = flops * (8 / 6 if ckpt else 1) / flops_per_s
        gamma += 2 * saved / (gpu.pcie_gbps * 1e9) if off_a else 0.0  # out in forward, back in backward
        delta = 3 * ADAM_BYTES * trainable / (gpu.hbm_gbps * 1e9)  # the optimizer step streams its state
        return MethodFit(name, Line(alpha, beta), Line(gamma, delta), math.nan, math.nan)

    # serving: bf16 (GPU) or fp32 (CPU) weights; CFG doubles the rows of a text-to-image call
    b = dtype_bytes
    weight_bytes = b * shape.total
    if int8:
        q = sum(shape.int8_weights.values())
        weight_bytes = b * (shape.total - q) + q + b * sum(shape.int8_channels.values())
        weight_bytes += b * shape.largest_module  # the one weight dequantized at a time (upper bound)
    offloaded = b * (shape.total - shape.params["connector"]) if off_w else 0
    beta = weight_bytes - offloaded + (b * shape.largest_module if off_w else 0)
    streamed = sum(b * matmul_params[k] for k in matmul_params)  # weights read per forward of LLM+SigLIP+head
    per_forward = b * (shape.params["llm"] + shape.params["rep_encoder"] + shape.params["flow_head"])
    kv_per_token = d.layers * 2 * d.kv * b
    if Task(task) is Task.T2I:
        rows, steps = 2, sampling_steps
        denoise = rows * ((n + 1) * _transient(d.h, d.inter, b) + n * _transient(d.enc_h, d.enc_inter, b))
        decode = VAE_MAPS * d.vae_width[0] * d.pixels * b
        alpha = rows * (PROMPT_TOKENS + n + 3) * kv_per_token + max(denoise, decode)
        gamma = steps * rows * 2 * sum(p * n for p in matmul_params.values()) / flops_per_s
        delta = steps * STEP_OVERHEAD_S
        transfers = steps + 1  # the prefill and every step run the offloaded modules
    else:
        new = 16
        prompt = 1 + n + 2 + QUESTION_TOKENS
        encode = VAE_MAPS * d.vae_width[1] * d.pixels * b
        alpha = (prompt + new) * kv_per_token + max(encode, prompt * _transient(d.h, d.inter, b))
        gamma = 2 * (matmul_params["llm"] * prompt + matmul_params["rep_encoder"] * n) / flops_per_s
        delta = new * (STEP_OVERHEAD_S + streamed * (INT8_TRAFFIC if int8 else 1) / (gpu.hbm_gbps * 1e9))
        transfers = new + 1
    gamma *= INT8_SLOWDOWN if int8 else 1.0
    moved = transfers * per_forward + b * shape.params["vae"]  # the VAE runs once per call
    delta += moved / (gpu.pcie_gbps * 1e9) if off_w else 0.0
    return MethodFit(name, Line(alpha, beta), Line(gamma, delta), math.nan, math.nan)


def estimate_plan(preset_or_model: str | TunaModel, task: str, gpu: GpuSpec) -> tuple[list[MethodFit], list[Verdict]]:
    """Estimated fits of every method that applies on a GPU, and their verdicts on its memory."""
    shape = model_shape(preset_or_model)
    fits = [estimate_fit(shape, task, name, gpu) for name in methods_for(task, "cuda")]
    return fits, verdicts(fits, gpu.memory_bytes)


@dataclass(frozen=True)
class ServingChoice:
    """What the app should switch on: `method` (None: nothing fits) at up to `batch` images."""

    method: str | None
    batch: int
    reason: str
    verdicts: tuple[Verdict, ...]


def recommend_for_serving(
    preset_or_model: str | TunaModel,
    budget_bytes: int,
    device: str | torch.device = "cuda",
    *,
    task: str = "t2i",
    gpu: GpuSpec = GENERIC_GPU,
    max_batch: int = Limits().max_num_images,
) -> ServingChoice:
    """The serving method (none / int8 / offload) with the best estimated throughput in the budget.

    An analytic estimate (profiling at app start would take minutes), so `none` stays unless
    another method is estimated more than 10 % faster or `none` does not fit. Pass the result's
    `method` to `apply_method(model, method, device=device)`. On a CPU only none and int8 apply.
    `max_batch` caps b_max at what the app ever asks for in one call (its image limit): a
    method whose only advantage is a batch the app never runs does not win.
    """
    if Task(task) is Task.TRAIN:
        raise ValueError("recommend_for_serving is for t2i or chat; plan training with `python -m tuna_core plan`")
    shape = model_shape(preset_or_model)
    names = methods_for(task, device)
    dtype_bytes = 4 if torch.device(device).type == "cpu" else 2  # the pipeline serves fp32 on a CPU
    fits = [estimate_fit(shape, task, name, gpu, dtype_bytes=dtype_bytes) for name in names]
    results = verdicts(fits, budget_bytes, limit=max_batch)
    best = recommend(results, tolerance=ESTIMATE_TOLERANCE)
    if best is None:
        return ServingChoice(None, 0, "no serving method fits this budget, even with int8 or offload", tuple(results))
    chosen = next(v for v in results if v.name == best)
    return ServingChoice(best, chosen.b_max, chosen.reason, tuple(results))


def recommend_for_training(
    preset_or_model: str | TunaModel,
    budget_bytes: int,
    device: str | torch.device = "cuda",
    *,
    gpu: GpuSpec = GENERIC_GPU,
) -> Verdict | None:
    """The training method with the best estimated throughput in the budget, or None if none fits.

    For `train --memory-budget` when no measured plan exists; a measured one
    (`python -m tuna_core plan --task train`, its JSON "recommended") is better where there is time.
    """
    shape = model_shape(preset_or_model)
    dtype_bytes = 4 if torch.device(device).type == "cpu" else 2
    fits = [estimate_fit(shape, "train", name, gpu, dtype_bytes=dtype_bytes) for name in methods_for("train", device)]
    results = verdicts(fits, budget_bytes)
    best = recommend(results, tolerance=ESTIMATE_TOLERANCE)
    return next(v for v in results if v.name == best) if best else None


@dataclass(frozen=True)
class TrainingMethod:
    """The chosen training method as a callable the training loop applies to its fresh model."""

    name: str
    batch: int  # estimated b_max under the budget
    reason: str
    device: str

    def __call__(self, model: TunaModel) -> None:
        apply_method(model, self.name, device=self.device)


def method_for_training(
    preset_or_model: str | TunaModel, budget: str | int, device: str | torch.device = "cpu"
) -> TrainingMethod:
    """`train --memory-budget 8GiB`: the estimated best training method, ready to apply.

    Raises when no method fits, naming the budget and the fix, rather than training into an
    out-of-memory error an hour later.
    """
    budget_bytes = parse_bytes(budget) if isinstance(budget, str) else int(budget)
    verdict = recommend_for_training(preset_or_model, budget_bytes, device)
    if verdict is None:
        name = preset_or_model if isinstance(preset_or_model, str) else preset_or_model.config.name
        raise ValueError(
            f"no training method fits --memory-budget {budget!r} for {name} on {device} (estimated); "
            "raise the budget, train a smaller preset, or shard the optimizer state across GPUs"
        )
    return TrainingMethod(verdict.name, verdict.b_max, verdict.reason, str(device))
