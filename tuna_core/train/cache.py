"""The latent cache: Shapes World scenes rendered once and encoded by the frozen VAE.

Encoding dominates a CPU step, so stage 2 reads latents from here. Only latents are stored
(safetensors, in chunks so an interrupted build resumes); the scenes, edits and texts are
regenerated from their seeds, and texts are drawn fresh at every step, so one cached image
serves many prompts, questions and captions.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from tuna_core.config import TrainConfig
from tuna_core.data.tasks import sample_edit
from tuna_core.data.world import Scene, render_image, render_video, sample_scene
from tuna_core.media import to_pixels
from tuna_core.model.visual import LatentVAE

CHUNK = 256
# Seed namespaces: training scenes use these; evaluation uses its own (see tuna_core.eval).
IMAGE_NS, EDIT_NS, VIDEO_NS = 7, 8, 9


def image_scene(seed: int, i: int) -> Scene:
    return sample_scene(np.random.default_rng([seed, IMAGE_NS, i]))


def video_scene(seed: int, i: int) -> Scene:
    return sample_scene(np.random.default_rng([seed, VIDEO_NS, i]), video=True)


def edit_of(seed: int, i: int) -> tuple[str, Scene]:
    """The edit applied to cached image `i` (instruction, target scene)."""
    return sample_edit(image_scene(seed, i), np.random.default_rng([seed, EDIT_NS, i]))


@dataclass
class LatentCache:
    seed: int
    images: torch.Tensor  # (N, C, 1, h, w) float16
    edit_targets: torch.Tensor  # (M, C, 1, h, w): target of editing image i, for i < M
    videos: torch.Tensor  # (K, C, T', h, w)
    image_scenes: list[Scene]
    edits: list[tuple[str, Scene]]
    video_scenes: list[Scene]


def render_cached(kind: str, seed: int, i: int) -> np.ndarray:
    """The pixels of cached item `i` of `kind` (images, edit_targets or videos): pure, so any process can render it."""
    if kind == "images":
        return render_image(image_scene(seed, i))
    if kind == "edit_targets":
        return render_image(edit_of(seed, i)[1])
    return render_video(video_scene(seed, i))


def build_cache(vae: LatentVAE, cfg: TrainConfig, folder: Path) -> LatentCache:
    """Encode (or load) every cached latent; chunks already on disk are reused.

    Rendering runs on every CPU core (one process each, started only if a chunk is missing):
    with the VAE on a GPU it is what the build waits on.
    """
    folder.mkdir(parents=True, exist_ok=True)
    seed = cfg.seed
    counts = {"images": cfg.cache_images, "edit_targets": cfg.cache_edits, "videos": cfg.cache_videos}
    tensors = {}
    workers = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as renderers:
        for name, count in counts.items():
            chunks = []
            for start in tqdm(range(0, count, CHUNK), desc=f"cache {name}", dynamic_ncols=True):
                path = folder / f"{name}-{seed}-{start:06d}-{CHUNK}.safetensors"
                if not path.exists():
                    indices = range(start, min(start + CHUNK, count))
                    rendered = renderers.map(partial(render_cached, name, seed), indices, chunksize=8)
                    pixels = to_pixels(np.stack(list(rendered)))
                    with torch.no_grad():
                        lat = torch.cat([vae.encode(p) for p in pixels.split(32 if pixels.shape[2] == 1 else 4)])
                    save_file({"latents": lat.half().cpu().contiguous()}, str(path))
                chunks.append(load_file(str(path))["latents"])
            tensors[name] = torch.cat(chunks)
    return LatentCache(
        seed,
        tensors["images"],
        tensors["edit_targets"],
        tensors["videos"],
        [image_scene(seed, i) for i in range(cfg.cache_images)],
        [edit_of(seed, i) for i in range(cfg.cache_edits)],
        [video_scene(seed, i) for i in range(cfg.cache_videos)],
    )
