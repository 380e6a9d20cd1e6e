"""Flow-matching head: adaLN-Zero attention blocks with qk-norm and 3D RoPE over image tokens.

Input: the LLM's last hidden states at the target image's token positions and the time t.
Output: the velocity x1 − x0 per latent token. The adaLN modulations and the output layer
start at zero, so a fresh head predicts zero velocity and every block is the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tuna_core.config import FlowHeadConfig


def timestep_frequencies(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) times in [0, 1] → (B, dim) sinusoidal features (t scaled to [0, 1000] as in DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features → MLP. Used for the LLM's time token and for the head's adaLN."""

    def __init__(self, hidden_size: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        freqs = timestep_frequencies(t, self.frequency_size).to(self.mlp[0].weight.dtype)
        return self.mlp(freqs)


def rope_3d_angles(ids: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """(N, 3) integer (t, y, x) ids → (N, head_dim/2) rotation angles.

    The head dimension is split Wan-style: a third-ish for time, the rest shared by y and x,
    each axis getting its own frequency ladder.
    """
    half = head_dim // 2
    hw = 2 * (half // 3)  # pairs for y and x together
    splits = [half - hw, hw // 2, hw // 2]
    angles = []
    for axis, n in enumerate(splits):
        freqs = 1.0 / theta ** (torch.arange(n, dtype=torch.float32, device=ids.device) / max(n, 1))
        angles.append(ids[:, axis].float()[:, None] * freqs[None])
    return torch.cat(angles, dim=-1)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of (B, H, N, D) by (N, D/2) angles, in float32."""
    xf = x.float().unflatten(-1, (-1, 2))
    cos, sin = angles.cos()[None, None], angles.sin()[None, None]
    out = torch.stack([xf[..., 0] * cos - xf[..., 1] * sin, xf[..., 0] * sin + xf[..., 1] * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Bidirectional self-attention with per-head RMS qk-norm and 3D RoPE."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3×(B, H, N, Dh)
        q, k = apply_rope(self.q_norm(q), angles), apply_rope(self.k_norm(k), angles)
        out = F.scaled_dot_product_attention(q, k, v)  # no mask: the whole image sees itself
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class AdaLNZeroBlock(nn.Module):
    """Three stages: modulation from the time embedding → attention → MLP, both gated."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        # 1. modulation
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=-1)
        # 2. attention
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1), angles)
        # 3. feed-forward
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FlowHead(nn.Module):
    """LLM states at image tokens (B, N, D_llm) + t (B,) → velocity (B, N, C).

    With `gradient_checkpointing` set, training keeps only each block's input and recomputes
    the block in backward (the memory planner's ``ckpt`` method switches it on).
    """

    gradient_checkpointing: bool = False

    def __init__(self, config: FlowHeadConfig, llm_dim: int, latent_channels: int) -> None:
        super().__init__()
        dim = config.hidden_size
        self.head_dim = config.head_dim
        self.proj_in = nn.Linear(llm_dim, dim)
        self.time_embed = TimestepEmbedder(dim, config.frequency_embedding_size)
        self.blocks = nn.ModuleList(
            AdaLNZeroBlock(dim, config.num_heads, config.mlp_ratio) for _ in range(config.num_layers)
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation_out = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.proj_out = nn.Linear(dim, latent_channels)
        for layer in (self.modulation_out[1], self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, hidden: torch.Tensor, t: torch.Tensor, rope_ids: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(hidden)  # (B, N, dim)
        c = self.time_embed(t)  # (B, dim)
        angles = rope_3d_angles(rope_ids, self.head_dim)  # (N, Dh/2)
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            x = checkpoint(block, x, c, angles, use_reentrant=False) if recompute else block(x, c, angles)
        shift, scale = self.modulation_out(c).chunk(2, dim=-1)
        return self.proj_out(modulate(self.norm_out(x), shift, scale))  # (B, N, C)
