"""The unified visual representation: Wan VAE encoder cascaded with a SigLIP vision tower.

Pixels (B, 3, T, H, W) in [-1, 1] → VAE latents (B, C, T', h, w), normalised by the VAE's
config statistics → the representation encoder sees each latent frame as a C-channel "image"
through a p×p patch embedding (1×1 in the paper, 2×2 for the 4× VAE of `tiny`) → connector into
the LLM width. Understanding feeds clean latents; generation feeds the noisy x_t through the same
path, and the flow head answers with one p×p latent patch per token (`patchify`/`unpatchify`).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel


class LatentVAE(nn.Module):
    """diffusers' AutoencoderKLWan plus the latent normalisation the rest of the model expects.

    An image is a one-frame video. Encoding takes the posterior mean, so the same image always
    gives the same latent.
    """

    def __init__(self, vae: AutoencoderKLWan) -> None:
        super().__init__()
        self.vae = vae
        z = vae.config.z_dim
        self.register_buffer("mean", torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1), persistent=False)

    def set_statistics(self, mean: list[float], std: list[float]) -> None:
        """Adopt per-channel latent statistics: into the VAE config (so save_pretrained keeps them,
        where diffusers keeps them) and into the buffers the encode/decode normalisation uses."""
        self.vae.register_to_config(latents_mean=list(mean), latents_std=list(std))
        z = self.vae.config.z_dim
        self.mean = torch.tensor(mean, device=self.mean.device).view(1, z, 1, 1, 1)
        self.std = torch.tensor(std, device=self.std.device).view(1, z, 1, 1, 1)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] → normalised latents (B, C, T', H/s, W/s), on the VAE's device."""
        dtype = next(self.vae.parameters()).dtype
        mu = self.vae.encode(pixels.to(self.mean.device, dtype)).latent_dist.mode()
        return ((mu - self.mean.to(mu.dtype)) / self.std.to(mu.dtype)).float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents → pixels (B, 3, T, H, W) clamped to [-1, 1]."""
        dtype = next(self.vae.parameters()).dtype
        z = latents.to(dtype) * self.std.to(dtype) + self.mean.to(dtype)
        return self.vae.decode(z).sample.float().clamp(-1.0, 1.0)


def patchify(latents: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, T, h, w) → (B, T·(h/p)·(w/p), C·p·p): one row per visual token, frame-major and
    row-major like the representation encoder's output, channels then patch rows then columns."""
    b, c, t, h, w = latents.shape
    x = latents.reshape(b, c, t, h // p, p, w // p, p)
    return x.permute(0, 2, 3, 5, 1, 4, 6).reshape(b, t * (h // p) * (w // p), c * p * p)


def unpatchify(tokens: torch.Tensor, p: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """The inverse of `patchify`: (B, N, C·p·p) on a (T, H, W) token grid → (B, C, T, H·p, W·p)."""
    b, _, d = tokens.shape
    t, h, w = grid
    x = tokens.reshape(b, t, h, w, d // (p * p), p, p)
    return x.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, d // (p * p), t, h * p, w * p)


def build_representation_encoder(config: dict) -> SiglipVisionModel:
    """A SigLIP vision tower whose patch embedding is a p×p conv over VAE latent channels.

    The adapted config (patch_size p, num_channels = latent channels, no head) makes
    transformers build that embedding itself, so the rest of the tower is the library's.
    """
    return SiglipVisionModel(SiglipVisionConfig(**config))


class RepresentationEncoder(nn.Module):
    """Latents (B, C, T, h, w) → features (B, T·(h/p)·(w/p), D): frames folded into the batch."""

    def __init__(self, tower: SiglipVisionModel) -> None:
        super().__init__()
        self.tower = tower
        self.native_side = tower.config.image_size  # the latent side its position table was made for

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = latents.shape
        frames = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # (B·T, C, h, w)
        dtype = self.tower.get_input_embeddings().weight.dtype
        out = self.tower(
            pixel_values=frames.to(dtype), interpolate_pos_encoding=(h, w) != (self.native_side, self.native_side)
        ).last_hidden_state  # (B·T, (h/p)·(w/p), D)
        return out.reshape(b, -1, out.shape[-1])


class Connector(nn.Module):
    """RMSNorm → Linear → GELU → Linear: representation width into the LLM width."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(in_dim, eps=1e-6)
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class VisualTokens(nn.Module):
    """Representation encoder + connector: the unit that runs at every denoising step."""

    def __init__(self, encoder: RepresentationEncoder, connector: Connector) -> None:
        super().__init__()
        self.encoder = encoder
        self.connector = connector

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, T, h, w) normalised latents → (B, T·h·w, D_llm)."""
        feats = self.encoder(latents)
        return self.connector(feats.to(self.connector.fc1.weight.dtype))


class LatentTokens(nn.Module):
    """Latents (B, C, T, h, w) → (B, N, D) through an MLP on p×p latent patches alone: the
    decoupled ablation's generation path, which skips the representation encoder TUNA shares."""

    def __init__(self, latent_channels: int, patch: int, out_dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.connector = Connector(latent_channels * patch * patch, out_dim)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        tokens = patchify(latents, self.patch)  # token order as the representation encoder's
        return self.connector(tokens.to(self.connector.fc1.weight.dtype))
