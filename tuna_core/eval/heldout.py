"""Held-out losses: every training task's own loss on scenes training never saw, noise and t fixed.

Accuracy is all-or-nothing per item, so after a short run (the equal-compute ablations) every
generation recipe reads 0 and cannot be ranked. The training losses on one fixed held-out set —
the same scenes, texts, noise and flow times for every checkpoint — rank recipes long before
accuracy moves, and are comparable across them because nothing but the weights changes.
"""

from __future__ import annotations

import numpy as np
import torch

from tuna_core.config import TASK_GROUPS, TrainConfig
from tuna_core.data.tasks import VIDEO_TASKS, sample_edit
from tuna_core.data.world import render_image, render_video, sample_scene
from tuna_core.media import to_pixels
from tuna_core.model import TunaModel
from tuna_core.tokenizer import TunaTokenizer
from tuna_core.train.cache import LatentCache
from tuna_core.train.joint import task_losses

HELDOUT_NS = 1001  # seed namespace no training stream (nor `eval`'s items) uses


@torch.no_grad()
def held_out_set(model: TunaModel, seed: int, images: int, videos: int) -> LatentCache:
    """Render and encode a small latent set from the held-out namespace, shaped like training's."""
    rng = np.random.default_rng([seed, HELDOUT_NS])
    image_scenes = [sample_scene(rng) for _ in range(images)]
    edits = [sample_edit(s, rng) for s in image_scenes]
    video_scenes = [sample_scene(rng, video=True) for _ in range(videos)]
    size = model.config.image_size

    def encode(frames: list[np.ndarray]) -> torch.Tensor:
        return torch.cat([model.vae.encode(p.to(model.device)).cpu() for p in to_pixels(np.stack(frames)).split(8)])

    return LatentCache(
        seed=seed,
        images=encode([render_image(s, size) for s in image_scenes]),
        edit_targets=encode([render_image(t, size) for _, t in edits]),
        videos=encode([render_video(s, size) for s in video_scenes]),
        image_scenes=image_scenes,
        edits=edits,
        video_scenes=video_scenes,
    )


@torch.no_grad()
def held_out_losses(
    model: TunaModel,
    tok: TunaTokenizer,
    *,
    seed: int = 12345,
    images: int = 64,
    videos: int = 16,
    draws: int = 4,
    tasks: tuple[str, ...] = tuple(TrainConfig().task_batches()),  # what the default recipe trains
) -> dict[str, float]:
    """Mean loss per task ("t2i" → its flow MSE, "qa" → its token CE …) over `draws` fixed batches.

    Batches, noise and t are pure functions of (seed, task, draw), so two checkpoints of the same
    preset are scored on exactly the same inputs. No caption drop-out: the conditional loss.
    """
    model.eval()
    data = held_out_set(model, seed, images, videos)
    losses: dict[str, float] = {}
    for task in tasks:
        k = TrainConfig.tasks.index(task)  # not its place in `tasks`: a subset scores the same draws
        size = videos if task in VIDEO_TASKS else images
        name = "flow" if task in TASK_GROUPS["generation"] else "text"
        total = 0.0
        for draw in range(draws):
            rng = np.random.default_rng([seed, HELDOUT_NS, k, draw])
            total += float(task_losses(model, task, size, data, tok, rng, 0.0, model.config, model.device)[name])
        losses[task] = total / draws
    return losses
