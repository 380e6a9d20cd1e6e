"""Stage 1: train the tiny Wan VAE on freshly rendered Shapes World images and videos.

The full-size model uses Wan 2.2's VAE frozen; the tiny one has no pretrained VAE to borrow, so
it learns one here first, then freezes it for stage 2. The loss is an object-weighted L1: shapes are
~5 % of the pixels, and under plain L1 (or MSE) the VAE sits for thousands of steps on a plateau where it
paints the background and ignores them; weighting object pixels ×(1 + w) breaks that plateau within a few
hundred steps. The decoder reads the posterior mean (the sampled latent's unit noise drowns the young
encoder's signal) and a small KL keeps the latent scale sane. docs/TRAINING.md logs every run behind these
choices.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample
from tqdm import tqdm

from tuna_core.config import ModelConfig, TrainConfig
from tuna_core.data.world import Scene, render_image, render_video, sample_scene
from tuna_core.eval.detector import detect_scene, detect_video
from tuna_core.eval.evaluate import describe, video_matches
from tuna_core.media import to_frames, to_pixels
from tuna_core.train.common import append_log, get_lr, plot_losses, step_rng, truncate_log

STATE = "vae_state.pt"


def render_batch(rng: np.random.Generator, images: int, videos: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fresh random scenes as pixel tensors: `images` one-frame clips and `videos` 17-frame clips."""
    imgs = [render_image(sample_scene(rng)) for _ in range(images)]
    vids = [render_video(sample_scene(rng, video=True)) for _ in range(videos)]
    return to_pixels(np.stack(imgs)), to_pixels(np.stack(vids)) if vids else None


def object_mask(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, H, W) True where a pixel differs from the background; a Shapes World corner pixel is always
    background (an object's box stays inside its cell)."""
    return (x - x[..., :1, :1]).abs().amax(dim=1, keepdim=True) > 0.1


def object_weighted_l1(recon: torch.Tensor, x: torch.Tensor, object_weight: float) -> torch.Tensor:
    """L1 with object pixels weighted 1 + `object_weight`, divided by the mean weight so a uniform error e
    still costs e (the learning rate keeps its meaning whatever the weight)."""
    w = 1.0 + object_weight * object_mask(x).float()
    return ((recon - x).abs() * w).mean() / w.mean()


def read_exactly(scenes: list[Scene], images: np.ndarray) -> float:
    """Fraction of `images` in which the evaluation's detector reads back exactly the scene drawn. On a VAE's
    round trip this bounds every generation metric: a scene the VAE cannot reproduce, the model cannot draw."""
    pairs = zip(scenes, images, strict=True)
    return float(np.mean([describe(detect_scene(image)) == describe(scene) for scene, image in pairs]))


@torch.no_grad()
def held_out_errors(vae: AutoencoderKLWan, seed: int) -> dict[str, float]:
    """On 32 fixed unseen images: reconstruction L1 over all pixels and over object pixels alone (the hard
    part), and the fraction of round trips the detector reads exactly; on 8 unseen videos, through the
    keyframe video path stage 1 ends with: L1 and the fraction whose round trip keeps every object's cell
    and direction (it bounds text-to-video)."""
    vae.eval()
    rng = step_rng(seed, 10**9 + 1)
    scenes = [sample_scene(rng) for _ in range(32)]
    x = to_pixels(np.stack([render_image(s) for s in scenes]))
    recon = vae.decode(vae.encode(x).latent_dist.mode()).sample
    err = (recon - x).abs().mean(dim=1)  # (B, T, H, W)
    objects = object_mask(x)[:, 0]
    clips = [sample_scene(rng, video=True) for _ in range(8)]
    v = to_pixels(np.stack([render_video(s) for s in clips]))
    shipped = copy.deepcopy(vae)  # the video path as stage 1 will leave it
    keyframe_video_path(shipped)
    v_recon = shipped.decode(shipped.encode(v).latent_dist.mode()).sample
    v_read = [video_matches(s, detect_video(f)) for s, f in zip(clips, to_frames(v_recon), strict=True)]
    vae.train()
    return {
        "eval/l1": err.mean().item(),
        "eval/object_l1": err[objects].mean().item(),
        "eval/read_exactly": read_exactly(scenes, to_frames(recon)[:, 0]),
        "eval/video_l1": (v_recon - v).abs().mean().item(),
        "eval/video_read": float(np.mean(v_read)),
    }


def train_vae(model_config: ModelConfig, cfg: TrainConfig, out: Path) -> AutoencoderKLWan:
    """Train (or resume) the VAE into `out/vae/`; returns it frozen, with latent statistics set."""
    final = out / "vae"
    if (final / "config.json").exists():
        return AutoencoderKLWan.from_pretrained(final, use_safetensors=True, local_files_only=True).eval()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    vae = AutoencoderKLWan(**model_config.vae)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    start = 0
    state_path, log = out / STATE, out / "vae_log.jsonl"
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = state["step"]
        truncate_log(log, start)
    bar = tqdm(range(start, cfg.vae_steps), initial=start, total=cfg.vae_steps, desc="vae", dynamic_ncols=True)
    last: dict[str, float] = {}
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = get_lr(step, cfg.vae_lr, cfg.vae_warmup_steps, cfg.vae_steps, 0.05)
        rng = step_rng(cfg.seed, step)
        losses = {}
        videos = cfg.vae_batch_videos if step % cfg.vae_video_every == 0 else 0
        images, clips = render_batch(rng, cfg.vae_batch_images, videos)
        for name, x in (("image", images), ("video", clips)):
            if x is None:
                continue
            post = vae.encode(x).latent_dist
            recon = vae.decode(post.mode()).sample
            losses[name] = object_weighted_l1(recon, x, cfg.vae_object_weight) + cfg.vae_kl_weight * post.kl().mean()
        loss = sum(losses.values())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        last |= {f"loss/{k}": v.item() for k, v in losses.items()}  # video steps are every k-th: keep their latest
        bar.set_postfix({k.split("/")[1]: f"{v:.4f}" for k, v in last.items()}, refresh=False)
        if (step + 1) % 10 == 0:
            append_log(log, {"step": step + 1, **last})
        if (step + 1) % 100 == 0 or step + 1 == cfg.vae_steps:
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": vae.state_dict(), "optimizer": opt.state_dict(), "step": step + 1}, tmp)
            tmp.replace(state_path)
            append_log(log, {"step": step + 1, **held_out_errors(vae, cfg.seed)})
            plot_losses(log, out / "vae_loss.png", "VAE stage (object-weighted L1 + KL)")
    vae.eval()
    keyframe_video_path(vae)
    _set_latent_statistics(vae, cfg.seed)
    vae.save_pretrained(final, safe_serialization=True)
    return vae


@torch.no_grad()
def keyframe_video_path(vae: AutoencoderKLWan) -> None:
    """Make the VAE's video path its image path on keyframes: latent frame k is the image latent of frame 4k,
    and each decoded latent frame is held for the 4 frames it covers.

    A Wan causal conv sees an image through the last tap of its temporal kernel alone (the earlier taps meet
    the causal zero padding), so image training never shapes the earlier taps, and the temporal resamplers run
    on videos only. Left at their random values, they scramble every frame after the first (docs/TRAINING.md:
    0 of 50 video round trips read correctly). Zeroing the earlier taps and making the resamplers pick the
    newest frame (encoder) or repeat it (decoder) leaves images bit for bit as they were.
    """
    time_convs = [m.time_conv for m in vae.modules() if isinstance(m, WanResample) and hasattr(m, "time_conv")]
    for conv in time_convs:  # (out, in, 3, 1, 1): out = in (down) or 2·in (up: two output frames)
        conv.weight.zero_()
        conv.bias.zero_()
        eye = torch.eye(conv.in_channels)
        for frame in range(conv.out_channels // conv.in_channels):
            conv.weight[frame * conv.in_channels : (frame + 1) * conv.in_channels, :, -1, 0, 0] = eye
    for m in vae.modules():
        if isinstance(m, WanCausalConv3d) and m.kernel_size[0] > 1 and all(m is not c for c in time_convs):
            m.weight[:, :, :-1] = 0.0


@torch.no_grad()
def _set_latent_statistics(vae: AutoencoderKLWan, seed: int) -> None:
    """Per-channel mean/std of posterior means over 512 rendered images and 32 videos."""
    rng = step_rng(seed, 10**9)  # a stream no training step uses
    images, videos = render_batch(rng, 512, 32)
    mus = [vae.encode(chunk).latent_dist.mode() for chunk in images.split(64)]
    mus += [vae.encode(chunk).latent_dist.mode() for chunk in videos.split(8)]
    flat = torch.cat([m.transpose(0, 1).flatten(1) for m in mus], dim=1)  # (C, N)
    vae.register_to_config(latents_mean=flat.mean(1).tolist(), latents_std=flat.std(1).tolist())
