"""Stage 2: joint training on understanding, text-to-image, text-to-video and editing.

Each optimizer step sums one micro-batch per task (backward per task, so peak memory is one
task's): 1.0 × flow MSE + 0.2 × next-token CE, where an edit's MSE may weight the latent positions
the edit changes more (`edit_change_weight`). Generation prompts and edit instructions are
dropped with probability `caption_dropout` so classifier-free guidance has an unconditional
branch to contrast with. With probability `follow_ups` an understanding sample is a chat's later
turn, so the model learns to answer the last question after earlier ones. The data stream, noise
and t are pure functions of (seed, step, task, rank), so a resumed run replays exactly what an
uninterrupted one would have done. Runs as is on CPU, one GPU, or several under `accelerate
launch` (DDP or FSDP).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from diffusers import AutoencoderKLWan
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from tuna_core.checkpoint import load_model, save_pretrained
from tuna_core.config import ModelConfig, TrainConfig
from tuna_core.data.tasks import VIDEO_TASKS, chat_turns, edit_caption_question, generation_prompt, vocabulary
from tuna_core.data.world import caption
from tuna_core.layout import chat_layout, editing_layout, generation_layout, understanding_layout
from tuna_core.model import SequenceBatch, TunaModel
from tuna_core.tokenizer import TunaTokenizer
from tuna_core.train.cache import LatentCache, build_cache
from tuna_core.train.common import append_log, get_lr, plot_losses, step_rng, truncate_log

Batch = tuple[SequenceBatch, list[torch.Tensor], torch.Tensor | None]


def make_batch(
    task: str,
    size: int,
    cache: LatentCache,
    tok: TunaTokenizer,
    rng: np.random.Generator,
    dropout: float,
    config: ModelConfig,
    follow_ups: float = 0.0,
) -> Batch:
    """One homogeneous micro-batch: layouts, clean-span latents and the generation target.

    `dropout` and `follow_ups` are TrainConfig's caption_dropout and follow_ups.
    """
    sp = tok.special

    def keep(text: str) -> list[int]:
        return [] if rng.random() < dropout else tok.encode(text)

    if task in ("edit", "edit_caption"):  # cached image i is the source of edit i
        idx = rng.integers(len(cache.edit_targets), size=size)
        n = config.latent_tokens(cache.images.shape[2:])
        source = [cache.images[idx].float()]
        if task == "edit_caption":
            qa = [(edit_caption_question(cache.edits[i][0]), caption(cache.edits[i][1])) for i in idx]
            layouts = [understanding_layout(sp, [n], tok.encode(q), tok.encode(a)) for q, a in qa]
            return SequenceBatch.from_layouts(layouts), source, None
        layouts = [editing_layout(sp, n, keep(cache.edits[i][0]), n) for i in idx]
        return SequenceBatch.from_layouts(layouts), source, cache.edit_targets[idx].float()
    video = task in VIDEO_TASKS
    pool, pool_scenes = (cache.videos, cache.video_scenes) if video else (cache.images, cache.image_scenes)
    idx = rng.integers(len(pool), size=size)
    scenes = [pool_scenes[i] for i in idx]
    latents = pool[idx].float()  # (B, C, T, h, w)
    n = config.latent_tokens(latents.shape[2:])  # visual tokens per sample
    if task in ("t2i", "t2v"):
        layouts = [generation_layout(sp, keep(generation_prompt(s, rng)), n) for s in scenes]
        return SequenceBatch.from_layouts(layouts), [], latents
    chats = [chat_turns(task, s, rng, follow_ups) for s in scenes]
    layouts = [chat_layout(sp, [n], [(tok.encode(q), tok.encode(a)) for q, a in turns]) for turns in chats]
    return SequenceBatch.from_layouts(layouts), [latents], None


CHANGE_THRESHOLD = 0.5  # in the source latents' std: about a sixth of a trained VAE's edit positions change more


def edit_change_weights(source: torch.Tensor, target: torch.Tensor, change_weight: float) -> torch.Tensor:
    """(B, 1, T, h, w) flow-loss weights for edits: 1 + `change_weight` where the target latent differs from
    the source's, in some channel, by more than CHANGE_THRESHOLD times the source latents' std (what the edit
    changed; smaller differences are the VAE's response to a change nearby), 1 elsewhere."""
    changed = (target - source).abs().amax(dim=1, keepdim=True) > CHANGE_THRESHOLD * source.std()
    return 1.0 + change_weight * changed.float()


def task_losses(
    model: torch.nn.Module,
    task: str,
    size: int,
    cache: LatentCache,
    tok: TunaTokenizer,
    rng: np.random.Generator,
    dropout: float,
    config: ModelConfig,
    device: torch.device,
    follow_ups: float = 0.0,
    edit_change_weight: float = 0.0,
    time_shift: float | None = None,
) -> dict[str, torch.Tensor]:
    """One micro-batch's losses, before the recipe's per-loss weights; its samples, texts, noise and t
    are all drawn from `rng`, so training (and the held-out losses of tuna_core.eval.heldout, which
    keep the plain MSE) replay exactly."""
    batch, clean, target = make_batch(task, size, cache, tok, rng, dropout, config, follow_ups)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    weights = None
    if task == "edit" and edit_change_weight:
        weights = edit_change_weights(clean[0], target, edit_change_weight).to(device)
    target = None if target is None else target.to(device)
    clean = [c.to(device) for c in clean]
    return model(batch.to(device), clean, target, gen, flow_weights=weights, time_shift=time_shift)


class EMA:
    """Exponential moving average of the trainable weights, kept in float32."""

    def __init__(self, params: dict[str, torch.Tensor], decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in params.items()}

    def to(self, device: torch.device) -> None:
        """Keep the average beside the weights: it is updated from them every step."""
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor], step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # short runs: don't average in the random init
        # One grouped update rather than a kernel launch per tensor.
        torch._foreach_lerp_([self.shadow[k] for k in params], [v.detach().float() for v in params.values()], 1 - d)


def train_joint(
    model_config: ModelConfig,
    cfg: TrainConfig,
    out: Path,
    vae: AutoencoderKLWan,
    *,
    cache_dir: Path | None = None,
    memory_method: Callable[[TunaModel], None] | None = None,
    init: Path | None = None,
) -> Path:
    """Train (or resume) stage 2 in `out`; returns the folder of the final EMA checkpoint.

    `cache_dir` lets several runs (the ablations) share one latent cache; default `out/cache`.
    `init` starts a new run from a checkpoint folder's weights (EMA included) with a fresh
    optimizer and its own schedule: how a run continues when its training state is gone.
    """
    out.mkdir(parents=True, exist_ok=True)
    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "no"
    # Each task's backward uses only part of the model (understanding never reaches the flow head), so data-parallel
    # runs must let DDP find the parameters a pass left unused; its gradient stays averaged across processes.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(mixed_precision=precision, kwargs_handlers=[ddp])
    tok = TunaTokenizer.word_level(vocabulary())
    config = dataclasses.replace(model_config, llm={**model_config.llm, "vocab_size": tok.vocab_size})
    torch.manual_seed(cfg.seed)
    model = TunaModel(config)
    model.vae.vae.load_state_dict(vae.state_dict())
    model.vae.set_statistics(vae.config.latents_mean, vae.config.latents_std)
    model.vae.requires_grad_(False)
    if memory_method is not None:
        memory_method(model)
    with accelerator.main_process_first():
        cache = build_cache(model.vae.to(accelerator.device), cfg, cache_dir or out / "cache")

    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    decay = [p for n, p in trainable.items() if p.ndim >= 2]
    no_decay = [p for n, p in trainable.items() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    ema = EMA(trainable, cfg.ema_decay)
    state_dir, log = out / "train_state", out / "log.jsonl"
    start = _resume(state_dir, model, opt, ema, log)
    if start == 0 and init is not None:
        _warm_start(model, ema, init)
    model, opt = accelerator.prepare(model, opt)
    ema.to(accelerator.device)
    batches = cfg.task_batches()

    bar = tqdm(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        desc="joint",
        dynamic_ncols=True,
        disable=not accelerator.is_main_process,
    )
    lap = time.perf_counter()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = get_lr(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
        pending: dict[str, torch.Tensor] = {}
        for k, (task, size) in enumerate(batches.items()):
            rng = step_rng(cfg.seed, step * len(batches) + k, accelerator.process_index)
            losses = task_losses(
                model,
                task,
                size,
                cache,
                tok,
                rng,
                cfg.caption_dropout,
                config,
                accelerator.device,
                cfg.follow_ups,
                cfg.edit_change_weight,
                cfg.time_shift,
            )
            loss = cfg.flow_weight * losses.get("flow", 0.0) + cfg.text_weight * losses.get("text", 0.0)
            accelerator.backward(loss)
            pending |= {f"loss/{task}_{name}": v.detach().float() for name, v in losses.items()}
        accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(trainable, step)
        # Losses are read once per step: a .item() per loss would stall a GPU after every task's backward.
        record = dict(zip(pending, torch.stack(list(pending.values())).tolist(), strict=True))
        bar.set_postfix({k.split("/")[1]: f"{v:.3f}" for k, v in record.items()}, refresh=False)
        if accelerator.is_main_process and (step + 1) % cfg.log_every == 0:
            now = time.perf_counter()  # the losses' .tolist() waited for the device, so this is wall time
            seconds = round((now - lap) / cfg.log_every, 4)
            append_log(log, {"step": step + 1, "lr": opt.param_groups[0]["lr"], **record, "s_per_step": seconds})
            lap = now
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                _save_state(state_dir, accelerator.unwrap_model(model), opt, ema, step + 1)
                _export_ema(accelerator.unwrap_model(model), ema, tok, out / "latest")
                plot_losses(log, out / "loss.png", "joint training (per task)")
    return out / "latest"


def _save_state(folder: Path, model: TunaModel, opt: torch.optim.Optimizer, ema: EMA, step: int) -> None:
    """Weights and EMA as safetensors, optimizer via torch.save (reloaded with weights_only=True)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(tmp / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in ema.shadow.items()}, str(tmp / "ema.safetensors"))
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "step.json").write_text(json.dumps({"step": step}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _resume(folder: Path, model: TunaModel, opt: torch.optim.Optimizer, ema: EMA, log: Path) -> int:
    if not (folder / "step.json").exists():
        return 0
    weights = load_file(str(folder / "model.safetensors"))
    model.load_state_dict(weights, strict=False)
    ema.shadow = load_file(str(folder / "ema.safetensors"))
    opt.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    step = json.loads((folder / "step.json").read_text())["step"]
    truncate_log(log, step)
    return step


def _warm_start(model: TunaModel, ema: EMA, folder: Path) -> None:
    """Copy a checkpoint's weights into the live model and the EMA; its VAE must be the run's, or
    the cached latents would not be the ones it was trained on."""
    source, _ = load_model(folder)
    if source.config != model.config:
        raise ValueError(f"--init {folder}: its config.json is not the model this run trains (another preset?)")
    ours, theirs = model.vae.vae.state_dict(), source.vae.vae.state_dict()
    if any(not torch.equal(ours[k], theirs[k].to(ours[k].device)) for k in ours):  # ours may be on the GPU
        raise ValueError(f"--init {folder}: its VAE differs from this run's stage 1; pass --stage1 with its run")
    model.load_state_dict(source.state_dict())
    ema.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if n in ema.shadow}


def _export_ema(model: TunaModel, ema: EMA, tok: TunaTokenizer, folder: Path) -> None:
    """Save a loadable checkpoint whose trainable weights are the EMA's."""
    live = {n: p.detach().clone() for n, p in model.named_parameters() if n in ema.shadow}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in ema.shadow:
                p.copy_(ema.shadow[n].to(p.dtype))
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_pretrained(model, tok, tmp)
        for n, p in model.named_parameters():
            if n in live:
                p.copy_(live[n])
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
