"""The three compiled units, as one-tensor-in, one-tensor-out modules, and the shapes they serve.

DESIGN.md splits the visual path where the run counts differ: the VAE encoder runs once per input
image or video, the representation encoder + connector (`VisualTokens`) at every denoising step,
the VAE decoder once per result. Each `UnitSpec` holds one of them cast to the engine precision,
the per-sample input shapes it is built for (one bucket per image size × frame count the app
offers) and the parity metric its outputs are judged by.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from tuna_core.config import Limits, ModelConfig
from tuna_core.model import TunaModel
from tuna_core.model.visual import LatentVAE

UNIT_NAMES = ("encoder", "visual", "decoder")
PRECISIONS = (torch.float32, torch.bfloat16, torch.float16)
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Bucket:
    """A pixel-space input the app offers: frames × height × width (an image is one frame)."""

    frames: int
    height: int
    width: int


def default_buckets(config: ModelConfig) -> tuple[Bucket, ...]:
    """The app's square image and its default video: the shapes every request goes through."""
    side = config.image_size
    return Bucket(1, side, side), Bucket(config.video_frames, side, side)


def check_buckets(config: ModelConfig, shapes: Iterable[Bucket | Sequence[int]]) -> tuple[Bucket, ...]:
    """Validate (frames, height, width) triples: sides tile into visual tokens, frames into latent frames."""
    buckets: list[Bucket] = []
    s, k = config.token_stride, config.temporal_compression
    for shape in shapes:
        bucket = shape if isinstance(shape, Bucket) else Bucket(*(int(v) for v in shape))
        if bucket.frames < 1 or (bucket.frames - 1) % k:
            raise ValueError(f"frames must be {k}·n+1 for this VAE (1 for images, e.g. 17), got {bucket.frames}")
        for name, side in (("height", bucket.height), ("width", bucket.width)):
            if side < s or side % s:
                raise ValueError(f"{name} must be a positive multiple of {s}, got {side}; try {max(s, side // s * s)}")
        if bucket not in buckets:
            buckets.append(bucket)
    if not buckets:
        raise ValueError("shapes is empty; give at least one (frames, height, width), e.g. (1, 64, 64)")
    return tuple(buckets)


class VaeEncoder(nn.Module):
    """`LatentVAE.encode` as a module, so `torch.export` and `torch.compile` see a plain forward."""

    def __init__(self, vae: LatentVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(pixels)  # (B, 3, T, H, W) → (B, C, T', h, w) float32


class VaeDecoder(nn.Module):
    """`LatentVAE.decode` as a module; Wan's per-frame cache loop unrolls over the bucket's frames."""

    def __init__(self, vae: LatentVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents)  # (B, C, T', h, w) → (B, 3, T, H, W) float32 in [-1, 1]


class WeightsHash:
    """SHA-256 of a module's parameters and buffers, computed on first use and then kept.

    Buffers count too (the VAE's latent mean/std are non-persistent buffers that change outputs).
    Lazy, because only the TensorRT cache needs it and hashing the Wan VAE reads every weight.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    @cached_property
    def value(self) -> str:
        digest = hashlib.sha256()
        tensors = [*self.module.named_parameters(), *self.module.named_buffers()]
        for name, tensor in sorted(tensors, key=lambda item: item[0]):
            flat = tensor.detach().reshape(-1).contiguous().cpu()
            digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(flat.view(torch.uint8).numpy())
        return digest.hexdigest()


@dataclass
class UnitSpec:
    """One unit ready to build: its module (in the engine precision) and the inputs it must serve."""

    name: str
    module: nn.Module
    input_shapes: tuple[Shape, ...]  # per-sample shapes (no batch), one per bucket
    max_batch: int
    opt_batch: int
    metric: str  # "cosine" for features, "psnr" for decoded pixels
    weights: WeightsHash
    device: torch.device
    dtype: torch.dtype

    def example(self, shape: Shape, batch: int | None = None) -> torch.Tensor:
        """A fixed float32 input (seeded): pixels in [-1, 1] for the encoder, N(0, 1) latents otherwise."""
        generator = torch.Generator().manual_seed(0)
        size = (batch or self.opt_batch, *shape)
        if self.name == "encoder":
            x = torch.rand(size, generator=generator) * 2.0 - 1.0
        else:
            x = torch.randn(size, generator=generator)
        return x.to(self.device)


def cast_module(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """`module` itself if it already holds `dtype` weights, else a cast copy (the model stays as it is).

    Torch-TensorRT 2.13 builds strongly typed networks: the engine runs in the dtypes the graph
    carries, so precision is chosen here, by casting the module, not by a builder flag.
    """
    floats = {p.dtype for p in module.parameters() if p.is_floating_point()}
    if floats <= {dtype}:
        return module
    return copy.deepcopy(module).to(dtype)


def unit_specs(
    model: TunaModel, dtype: torch.dtype, buckets: Sequence[Bucket], limits: Limits = Limits()
) -> dict[str, UnitSpec]:
    """The encoder, visual and decoder units of `model` in `dtype`, for `buckets`.

    Batch limits follow the pipeline: every unit sees up to `max_num_images` rows (the visual unit
    encodes x_t once per step, whatever the number of guidance branches).
    """
    if dtype not in PRECISIONS:
        raise ValueError(f"dtype must be one of {', '.join(map(str, PRECISIONS))}, got {dtype}")
    config = model.config
    vae = cast_module(model.vae, dtype)  # shared by encoder and decoder: one copy at most
    visual = cast_module(model.generation_visual, dtype)
    vae_hash, visual_hash = WeightsHash(model.vae), WeightsHash(model.generation_visual)
    pixels = tuple((3, b.frames, b.height, b.width) for b in buckets)
    latents = tuple((config.latent_channels, *config.latent_grid(b.frames, b.height, b.width)) for b in buckets)
    images = limits.max_num_images
    common = {"device": model.device, "dtype": dtype}
    return {
        "encoder": UnitSpec("encoder", VaeEncoder(vae), pixels, images, 1, "cosine", vae_hash, **common),
        "visual": UnitSpec("visual", visual, latents, images, 1, "cosine", visual_hash, **common),
        "decoder": UnitSpec("decoder", VaeDecoder(vae), latents, images, 1, "psnr", vae_hash, **common),
    }
