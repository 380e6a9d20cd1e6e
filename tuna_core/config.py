"""Configuration dataclasses: the one source of defaults for the model, the sampler and training.

The library parts (Wan VAE, SigLIP vision tower, Qwen2 decoder) keep their own config classes;
``ModelConfig`` stores the keyword arguments for them, so a preset is a plain, JSON-serialisable
description of the whole model. Derived values (compression factors, tokens per image) are
properties, never stored twice.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Special tokens every TUNA tokenizer carries (added to a Qwen tokenizer, built into the word one).
SPECIAL_TOKENS: dict[str, str] = {
    "pad": "<|pad|>",
    "bos": "<|bos|>",
    "eos": "<|eos|>",
    "unk": "<|unk|>",
    "boi": "<|boi|>",  # begins an image/video span
    "eoi": "<|eoi|>",  # ends it
    "img": "<|img|>",  # placeholder replaced by one visual token
    "time": "<|time|>",  # placeholder replaced by the time embedding
}


@dataclass(frozen=True)
class FlowHeadConfig:
    """The flow-matching head: adaLN-Zero transformer blocks over the LLM's image-span states."""

    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    frequency_embedding_size: int = 256

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a TUNA model with random weights.

    ``vae``, ``rep_encoder`` and ``llm`` are keyword arguments for diffusers'
    ``AutoencoderKLWan``, transformers' ``SiglipVisionConfig`` and ``Qwen2Config``.
    The representation encoder config is already the *adapted* one: a patch embedding over VAE
    latents (``num_channels`` = latent channels; ``patch_size`` 1 as in the paper, 2 for ``tiny``,
    whose 4× VAE gives 2×2 latent pixels per token), one layer fewer than the SigLIP checkpoint it
    may come from, and no pooling head.
    """

    name: str
    vae: dict[str, Any]
    rep_encoder: dict[str, Any]
    llm: dict[str, Any]
    head: FlowHeadConfig = field(default_factory=FlowHeadConfig)
    tokenizer: str = "word"  # "word": the Shapes World word-level tokenizer; "pretrained": from a folder
    image_size: int = 64  # default square resolution
    size_multiple: int = 16  # height/width must be multiples of this
    max_image_side: int = 128
    video_frames: int = 17
    video_fps: int = 8
    max_video_frames: int = 33
    max_text_tokens: int = 64  # prompt/question budget; longer input is rejected, not truncated
    time_shift: float = 1.0  # flow time shift at `image_size`; grows with token count (see sampler)
    # "unified" is TUNA: generation feeds x_t through the representation encoder. "decoupled" is
    # the ablation baseline: generation latents reach the LLM through their own MLP instead.
    representation: str = "unified"

    def __post_init__(self) -> None:
        if self.representation not in ("unified", "decoupled"):
            raise ValueError(f"representation must be 'unified' or 'decoupled', got {self.representation!r}")
        if self.size_multiple % self.token_stride:
            raise ValueError(
                f"size_multiple {self.size_multiple} must be a multiple of the token stride {self.token_stride} "
                "(VAE spatial compression × latent patch), or some allowed sizes would not tile into tokens"
            )

    # -- derived ------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return int(self.vae.get("z_dim", 16))

    @property
    def spatial_compression(self) -> int:
        return int(self.vae.get("scale_factor_spatial", 8))

    @property
    def temporal_compression(self) -> int:
        return int(self.vae.get("scale_factor_temporal", 4))

    @property
    def llm_hidden_size(self) -> int:
        return int(self.llm["hidden_size"])

    @property
    def rep_hidden_size(self) -> int:
        return int(self.rep_encoder["hidden_size"])

    def latent_frames(self, frames: int) -> int:
        """Latent frames of a causal video VAE: the first frame alone, then one per `temporal_compression`."""
        return 1 + (frames - 1) // self.temporal_compression

    @property
    def latent_patch(self) -> int:
        """Side of the latent patch one visual token covers: the representation encoder's patch
        embedding, so the flow head predicts `latent_patch`² latent pixels per token."""
        return int(self.rep_encoder.get("patch_size", 1))

    @property
    def token_stride(self) -> int:
        """Pixels per visual token side: VAE compression times the latent patch."""
        return self.spatial_compression * self.latent_patch

    def latent_grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Latent (T', h, w) of a (frames, height, width) input."""
        s = self.spatial_compression
        return self.latent_frames(frames), height // s, width // s

    def token_grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Visual token (T', h/p, w/p) grid of a (frames, height, width) input: the LLM's span."""
        s = self.token_stride
        return self.latent_frames(frames), height // s, width // s

    def num_visual_tokens(self, frames: int, height: int, width: int) -> int:
        return math.prod(self.token_grid(frames, height, width))

    def latent_token_grid(self, latent_grid: Sequence[int]) -> tuple[int, int, int]:
        """Visual token grid of a (T', h, w) latent: one token per p×p latent patch."""
        frames, h, w = latent_grid
        p = self.latent_patch
        return frames, h // p, w // p

    def latent_tokens(self, latent_grid: Sequence[int]) -> int:
        """Visual tokens of a (T', h, w) latent."""
        return math.prod(self.latent_token_grid(latent_grid))

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def tiny(cls) -> ModelConfig:
        """The bundled model: Shapes World at 64×64, sized to train on a 2-core CPU in hours."""
        z = 16
        return cls(
            name="tiny",
            vae=dict(
                base_dim=16,
                z_dim=z,
                dim_mult=[1, 2, 4],  # 4× spatial: at 8× a 10-pixel shape loses its corners
                num_res_blocks=1,
                temperal_downsample=[True, True],
                latents_mean=[0.0] * z,
                latents_std=[1.0] * z,
                scale_factor_spatial=4,
                scale_factor_temporal=4,
            ),
            rep_encoder=dict(
                hidden_size=192,
                intermediate_size=576,
                num_hidden_layers=3,
                num_attention_heads=3,
                num_channels=z,
                image_size=16,  # latent side at 64×64; other sizes interpolate
                patch_size=2,  # 2×2 latent patches: still 8×8 = 64 tokens per 64×64 image
                vision_use_head=False,
            ),
            llm=dict(
                vocab_size=256,  # replaced by the tokenizer's size when the model is built
                hidden_size=256,
                intermediate_size=768,
                num_hidden_layers=4,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=1024,
                rope_theta=10000.0,
                tie_word_embeddings=True,
            ),
            head=FlowHeadConfig(hidden_size=256, num_layers=2, num_heads=4),
            tokenizer="word",
            image_size=64,
            size_multiple=16,
            max_image_side=128,
            max_text_tokens=64,
            time_shift=1.0,
        )

    @classmethod
    def tuna_1_5b(cls) -> ModelConfig:
        """Paper shapes: Wan 2.2 VAE, SigLIP2-so400m (minus last layer), Qwen2.5-1.5B."""
        return cls(
            name="tuna-1.5b",
            vae=_wan22_vae(),
            rep_encoder=_siglip2_so400m(z_dim=48),
            llm=dict(
                vocab_size=151936,
                hidden_size=1536,
                intermediate_size=8960,
                num_hidden_layers=28,
                num_attention_heads=12,
                num_key_value_heads=2,
                max_position_embeddings=32768,
                rope_theta=1000000.0,
                rms_norm_eps=1e-6,
                tie_word_embeddings=True,
            ),
            head=FlowHeadConfig(hidden_size=1536, num_layers=6, num_heads=12),
            tokenizer="pretrained",
            image_size=512,
            size_multiple=32,
            max_image_side=1024,
            video_frames=49,
            video_fps=16,
            max_video_frames=121,
            max_text_tokens=512,
            time_shift=3.0,
        )

    @classmethod
    def tuna_7b(cls) -> ModelConfig:
        """Paper shapes: Wan 2.2 VAE, SigLIP2-so400m (minus last layer), Qwen2.5-7B."""
        return dataclasses.replace(
            cls.tuna_1_5b(),
            name="tuna-7b",
            llm=dict(
                vocab_size=152064,
                hidden_size=3584,
                intermediate_size=18944,
                num_hidden_layers=28,
                num_attention_heads=28,
                num_key_value_heads=4,
                max_position_embeddings=32768,
                rope_theta=1000000.0,
                rms_norm_eps=1e-6,
                tie_word_embeddings=False,
            ),
            head=FlowHeadConfig(hidden_size=2048, num_layers=6, num_heads=16),
        )

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        presets = {"tiny": cls.tiny, "tuna-1.5b": cls.tuna_1_5b, "tuna-7b": cls.tuna_7b}
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
        return presets[name]()

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config.json has unknown fields {sorted(unknown)}; is it a TUNA config?")
        data = dict(data)
        data["head"] = FlowHeadConfig(**data.get("head", {}))
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


PRESETS = ("tiny", "tuna-1.5b", "tuna-7b")


def _wan22_vae() -> dict[str, Any]:
    """Wan 2.2 TI2V VAE shapes: 48 latent channels, 16× spatial (2×2 patchify + 8×), 4× temporal."""
    z = 48
    return dict(
        base_dim=160,
        decoder_base_dim=256,
        z_dim=z,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        latents_mean=[0.0] * z,  # the real statistics come with a real checkpoint's config.json
        latents_std=[1.0] * z,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
    )


def _siglip2_so400m(z_dim: int) -> dict[str, Any]:
    """SigLIP2-so400m-patch16-384 adapted: 1×1 patch embedding over latents, last layer dropped."""
    return dict(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=26,  # 27 in the checkpoint; TUNA drops the last one
        num_attention_heads=16,
        num_channels=z_dim,
        image_size=24,  # 384/16: the checkpoint's 24×24 position table, interpolated per input
        patch_size=1,
        layer_norm_eps=1e-6,
        vision_use_head=False,
    )


@dataclass(frozen=True)
class SamplerConfig:
    """Defaults for generation and decoding; the CLI flags and the app's sliders read these."""

    steps: int = 50
    guidance: float = 7.5
    # Edits only: a third branch with neither source nor instruction, s_I > 1 keeping more of the source
    # (InstructPix2Pix). 1 = plain guidance: two branches, the source in both.
    image_guidance: float = 1.0
    time_shift: float | None = None  # None: the model's shift for the requested size
    # Self-check: draw this many candidates per output and keep the one the model's own understanding
    # half captions closest to the prompt (TunaPipeline.self_check).
    image_candidates: int = 1
    video_candidates: int = 1
    # Edits have no caption to rank by, but an edit the model describes exactly as it describes its source has
    # changed nothing, so it is drawn again, up to this many draws in all (TunaPipeline.edit).
    edit_candidates: int = 1
    # ... and each draw is first checked after this share of its steps, on the clean latents its step points at,
    # so a no-op is dropped early. 0 = only at the end. Measured at 0.4 of 20 steps on 200 single-draw edits: 19
    # of the 26 no-ops already read as their source there, none of the 174 others did (docs/TRAINING.md, session 25).
    edit_early_check: float = 0.4
    # Thinking edits: the model first says what the edited image shows, then draws that (TunaPipeline.edit). Only
    # for a model trained on the edit_caption task; False draws from source and instruction directly.
    edit_think: bool = False
    solver: str = "euler"  # "euler" or "heun"
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0

    @classmethod
    def for_model(cls, config: ModelConfig) -> SamplerConfig:
        """The tiny model is trained for short schedules; full-size models use the paper's.

        The tiny guidance is measured: on the 4000-step checkpoint (`eval --n 100`) guidance 3 / 5 / 7 / 10
        drew 0.21 / 0.27 / 0.29 / 0.28 of the named objects in their colour at their cell; on the 14 800-step
        one edits with image guidance 1 / 2 / 3 / 5 / 8 succeeded 0.09 / 0.12 / 0.15 / 0.15 / 0.10 of the time and
        drew 0.24 / 0.27 / 0.27 / 0.30 / 0.27 of the objects exactly. On the shipped weights a time shift of 3
        (against the model's 1 for images, 2.2 for videos) lifted edits by 0.05 on two scene sets, 0.46 → 0.51 and
        0.33 → 0.38, and left text-to-image and video direction within the noise (docs/TRAINING.md, session 21).
        Self-check over 2 images and 3 videos first fitted the CPU speed targets (2 s an image, 10 s a video); at
        n = 100 on two scene sets it lifted text-to-image 0.79 → 0.82 and 0.78 → 0.82, and video direction
        0.54 → 0.67 and 0.62 → 0.67 (docs/TRAINING.md, session 22). 12 % of single-draw edits change nothing
        (the model describes them as their source; none of those is right); a second draw then lifted edits
        0.51 → 0.55 and 0.39 → 0.41, a third 0.55 and 0.42 (session 24), so edits get two draws, which keeps the
        worst case near the 2 s target. The bundled weights are trained to say what an edit's result shows
        (`edit_caption`), so the tiny model's edits think first: drawn from that plan, the eval's edits went
        0.61 → 0.75 after 600 steps of it (docs/TRAINING.md, session 35). Videos get 5 candidates since session 36:
        on those weights best of 1 / 3 / 5 read 0.66 / 0.72 / 0.75 and 0.69 / 0.81 / 0.80 on two prompt sets (a
        right candidate was among the 5 for 0.84 and 0.89), in 7 s a video against 4.5 s."""
        if config.name == "tiny":
            return cls(
                steps=20,
                guidance=7.0,
                image_guidance=5.0,
                time_shift=3.0,
                image_candidates=2,
                video_candidates=5,
                edit_candidates=2,
                edit_think=True,
                max_new_tokens=48,
            )
        return cls()

    def describe(self) -> str:
        """The generation settings a measurement ran with, for the headers of `eval` and `bench` reports."""
        shift = "" if self.time_shift is None else f", time shift {self.time_shift}"
        guidance = f"guidance {self.guidance}, edits' image guidance {self.image_guidance}"
        best = (self.image_candidates, self.video_candidates)
        check = "" if best == (1, 1) else f", self-check best of {best[0]} images / {best[1]} videos"
        if self.edit_think:
            check += f", edits think first (best of {self.edit_candidates} draws of the plan)"
        elif self.edit_candidates > 1:
            check += f", up to {self.edit_candidates} draws per edit"
        return f"{self.steps} {self.solver} steps{shift}, {guidance}{check}"


@dataclass(frozen=True)
class Limits:
    """Input limits the pipeline, CLI and app enforce (one place, so all three agree)."""

    max_prompt_chars: int = 2000
    min_steps: int = 1
    max_steps: int = 200
    min_guidance: float = 1.0
    max_guidance: float = 20.0
    min_time_shift: float = 0.1  # sweeps only (`eval --time-shift`); the shift warps the schedule, never the cost
    max_time_shift: float = 10.0
    max_num_images: int = 4
    max_candidates: int = 8
    max_upload_pixels: int = 4096 * 4096
    max_upload_bytes: int = 50 * 1024 * 1024
    max_video_seconds: float = 60.0


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe (`python -m tuna_core train`); the README's command uses these defaults."""

    seed: int = 0
    # Stage 1: the VAE alone, on rendered images and videos.
    vae_steps: int = 2500
    vae_lr: float = 2e-4
    vae_warmup_steps: int = 200
    vae_object_weight: float = 10.0  # object pixels count 1 + w times: breaks the paint-the-background plateau
    vae_batch_images: int = 16
    vae_batch_videos: int = 2
    vae_video_every: int = 4  # a video batch every k-th step: images carry the spatial learning cheaply
    vae_kl_weight: float = 1e-6
    # The latent cache: scenes rendered once and encoded by the frozen VAE.
    cache_images: int = 24000
    cache_edits: int = 12000
    cache_videos: int = 4000
    # Stage 2: joint training. Each step sums one micro-batch per task (sizes below).
    steps: int = 1600  # 3.0 s a step here: this recipe in 1 h 56; the shipped model resumes it to 6000 (README)
    lr: float = 5e-4
    # "auto": bf16 autocast on CUDA, float32 on CPU (the recipe's steps 1–6000 ran so). "bf16" on a CPU with
    # AVX-512 BF16 (this one) makes a joint step about 1.5× faster, held-out losses within 1 % (docs/TRAINING.md).
    mixed_precision: str = "auto"
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    flow_weight: float = 1.0
    text_weight: float = 0.2
    caption_dropout: float = 0.1
    # Share of understanding samples that end a chat: 1–2 earlier turns on the same scene come first, as
    # in the app's Chat. 0 in the recipe's first seven runs, 0.5 from the eighth (README, docs/TRAINING.md).
    follow_ups: float = 0.0
    # Latent positions an edit changes (source and target differ there) count 1 + w times in its flow loss:
    # the unchanged rest of the picture carries about 63 % of the plain loss (docs/TRAINING.md, session 31).
    edit_change_weight: float = 0.0
    # Flow time shift of the training draws for every generated span; None: the model's for the span's size (1 for
    # tiny images). The tiny sampler draws at 3, so 9 of its 20 steps fall below t = 0.2, where a shift of 1 puts
    # 8 % of the training draws and a shift of 3 about 39 % (docs/TRAINING.md, sessions 32–33).
    time_shift: float | None = None
    batch: dict[str, int] = field(
        default_factory=lambda: {
            "t2i": 24,
            "caption": 8,
            "qa": 24,
            "edit": 16,
            "t2v": 8,
            "video_qa": 8,
            "edit_caption": 0,
        }
    )  # size 0: not trained. edit_caption (say what an edit will draw) came after the recipe's first runs.
    tasks: tuple[str, ...] = ("t2i", "caption", "qa", "edit", "t2v", "video_qa", "edit_caption")  # subsets: ablations
    checkpoint_every: int = 100
    log_every: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.follow_ups <= 1.0:
            raise ValueError(f"follow_ups is a probability, between 0 and 1; got {self.follow_ups}")
        if self.edit_change_weight < 0:
            raise ValueError(
                f"edit_change_weight is an extra weight, ≥ 0 (0: plain MSE); got {self.edit_change_weight}"
            )
        if self.time_shift is not None and self.time_shift <= 0:
            raise ValueError(f"time_shift must be > 0 (1: no shift), or None for the model's; got {self.time_shift}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ValueError(f"mixed_precision must be 'auto', 'no' or 'bf16', got {self.mixed_precision!r}")
        known = set(TrainConfig.tasks)
        bad = {t: n for t, n in self.batch.items() if t not in known or n < 0}
        if bad or not any(self.batch.values()):
            raise ValueError(f"batch needs sizes ≥ 0 (0 or missing: skip) for tasks of {sorted(known)}; {self.batch}")

    def task_batches(self) -> dict[str, int]:
        """Micro-batch per trained task (size > 0), scaled so a subset sees as many samples per step as all
        (the ablations compare recipes at equal steps and samples)."""
        unknown = set(self.tasks) - set(TrainConfig.tasks)
        trained = [t for t in self.tasks if self.batch.get(t, 0) > 0]
        if unknown or not trained:
            raise ValueError(f"tasks must be some of {list(TrainConfig.tasks)} with a size > 0, got {list(self.tasks)}")
        scale = sum(self.batch.values()) / sum(self.batch[t] for t in trained)
        return {t: max(1, round(self.batch[t] * scale)) for t in trained}


TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "all": TrainConfig.tasks,
    "understanding": ("caption", "qa", "video_qa"),
    "generation": ("t2i", "edit", "t2v"),
}


BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "assets" / "tuna-tiny"
"""The checkpoint the app and CLI load by default (trained on Shapes World; see README)."""
