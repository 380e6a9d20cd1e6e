"""TunaPipeline: the four tasks behind one object, with validation, seeding and progress.

Each call: 1. check inputs → 2. encode the prompt (text prefix + any source image, cached once)
→ 3. noise from the caller's seed → 4. ODE sampler (representation encoder, LLM span and flow
head per step) → 5. VAE decode → 6. a typed result with settings and per-stage timings.
All per-call state is local, so concurrent callers (Gradio) cannot see each other's requests.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tuna_core.config import Limits, ModelConfig, SamplerConfig
from tuna_core.data.tasks import DESCRIBE_IMAGE, DESCRIBE_VIDEO, edit_caption_question
from tuna_core.layout import (
    Layout,
    chat_layout,
    editing_layout,
    generation_layout,
    prefix_layout,
    understanding_layout,
)
from tuna_core.media import to_frames, to_pixels, to_rgb
from tuna_core.model import TunaModel
from tuna_core.sampler import OdeStep, guided, guided_edit, ode_steps, sample_token, time_grid
from tuna_core.tokenizer import TunaTokenizer

Progress = Callable[[int, int], None]  # (step done, total steps)
Image_ = Image.Image | np.ndarray


@dataclass
class Units:
    """The compiled units the pipeline calls; engines/ swaps these for TensorRT or torch.compile."""

    vae_encode: Callable[[torch.Tensor], torch.Tensor]  # pixels (B,3,T,H,W) → latents
    visual: Callable[[torch.Tensor], torch.Tensor]  # latents → visual tokens (B,N,D)
    vae_decode: Callable[[torch.Tensor], torch.Tensor]  # latents → pixels
    backends: dict[str, str] = field(default_factory=lambda: {"encoder": "eager", "decoder": "eager"})

    @classmethod
    def eager(cls, model: TunaModel) -> Units:
        return cls(model.vae.encode, model.generation_visual, model.vae.decode)


@dataclass
class ImageResult:
    images: list[Image.Image]
    settings: dict[str, Any]
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)  # one line each, for the user: the UI and CLI show them


@dataclass
class VideoResult:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: int
    settings: dict[str, Any]
    timings: dict[str, float]


class TunaPipeline:
    def __init__(
        self,
        model: TunaModel,
        tokenizer: TunaTokenizer,
        *,
        model_id: str = "",
        sampler: SamplerConfig | None = None,
        limits: Limits = Limits(),
        units: Units | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config: ModelConfig = model.config
        self.model_id = model_id or self.config.name
        self.defaults = sampler or SamplerConfig.for_model(self.config)
        self.limits = limits
        self.units = units or Units.eager(model)
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_pretrained(
        cls, folder: str | Path | None = None, *, preset: str | None = None, device: str = "cpu", **kwargs: Any
    ) -> TunaPipeline:
        """Load a checkpoint folder, or a random-weight preset (say so: it draws noise, not shapes)."""
        from tuna_core.checkpoint import load_model

        model, tok = load_model(folder, preset=preset, device=device)
        model_id = Path(folder).name if folder else f"{preset} (random weights)"
        return cls(model, tok, model_id=model_id, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -- understanding ---------------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[dict[str, str]],
        images: Sequence[Image_] | None = None,
        videos: Sequence[np.ndarray] | None = None,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> str:
        """Answer the last user message about the images/videos; returns the whole answer."""
        answer = ""
        for answer in self.chat_stream(  # noqa: B007 -- the last partial answer is the whole answer
            messages,
            images,
            videos,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            progress=progress,
        ):
            pass
        return answer

    @torch.no_grad()
    def chat_stream(
        self,
        messages: Sequence[dict[str, str]],
        images: Sequence[Image_] | None = None,
        videos: Sequence[np.ndarray] | None = None,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> Iterator[str]:
        """Yield the answer so far after each decoded token (greedy unless temperature > 0).

        `messages` alternate user/assistant ({"role", "content"}), ending with a user message;
        images and videos are placed before the first message, in that order.
        """
        max_new = self._check_int("max_new_tokens", _default(max_new_tokens, self.defaults.max_new_tokens), 1, 512)
        temp = self.defaults.temperature if temperature is None else float(temperature)
        if not 0.0 <= temp <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {temp}")
        turns = self._chat_turns(messages)
        timings: dict[str, float] = {}
        with _Timer(timings, "encode"):
            latents = [self._encode_images([img]) for img in images or []]
            latents += [self._encode_video(v) for v in videos or []]
        if not latents:
            raise ValueError("attach an image or a video to ask about")
        spans = [self.config.latent_tokens(lat.shape[2:]) for lat in latents]
        layout = chat_layout(self.tokenizer.special, spans, turns)
        generator = torch.Generator().manual_seed(seed)
        tokens: list[int] = []
        with _Timer(timings, "llm"):
            for step, token in enumerate(self._decode(layout, latents, max_new, temp, generator)):
                tokens.append(token)
                if progress:
                    progress(step + 1, max_new)
                yield self.tokenizer.decode(tokens)
        self.last_timings = timings
        if not tokens:
            yield ""

    def _decode(
        self,
        layout: Layout,
        latents: list[torch.Tensor],
        max_new: int,
        temperature: float,
        generator: torch.Generator | None,
    ) -> Iterator[int]:
        """The tokens the model writes after `layout`, until [eos] or `max_new` (greedy at temperature 0)."""
        cache, logits = self.model.start_decoding(layout, latents)
        for position in range(len(layout), len(layout) + max_new):
            token = sample_token(logits.float().cpu(), temperature, self.defaults.top_p, generator)
            if int(token) == self.tokenizer.special.eos:
                return
            yield int(token)
            logits = self.model.next_logits(cache, token, position)

    # -- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def text_to_image(
        self,
        prompt: str,
        negative_prompt: str = "",
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        height: int | None = None,
        width: int | None = None,
        num_images: int = 1,
        candidates: int | None = None,
        progress: Progress | None = None,
    ) -> ImageResult:
        settings = self._generation_settings("t2i", prompt, negative_prompt, seed, steps, guidance)
        settings["candidates"] = self._check_candidates(_default(candidates, self.defaults.image_candidates))
        height = self._check_side("height", _default(height, self.config.image_size))
        width = self._check_side("width", _default(width, self.config.image_size))
        num_images = self._check_int("num_images", num_images, 1, self.limits.max_num_images)
        settings |= {"height": height, "width": width, "num_images": num_images}
        grid = self.config.latent_grid(1, height, width)
        cond = generation_layout(self.tokenizer.special, self._prompt_ids(prompt), 0)
        uncond = generation_layout(self.tokenizer.special, self._prompt_ids(negative_prompt, allow_empty=True), 0)
        frames, timings, _ = self._generate(cond, uncond, [], grid, num_images, settings, progress)
        return ImageResult([Image.fromarray(f[0]) for f in frames], settings, timings)

    @torch.no_grad()
    def text_to_video(
        self,
        prompt: str,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        num_frames: int | None = None,
        fps: int | None = None,
        candidates: int | None = None,
        progress: Progress | None = None,
    ) -> VideoResult:
        settings = self._generation_settings("t2v", prompt, "", seed, steps, guidance)
        settings["candidates"] = self._check_candidates(_default(candidates, self.defaults.video_candidates))
        num_frames = self._check_frames(_default(num_frames, self.config.video_frames))
        fps = self._check_int("fps", _default(fps, self.config.video_fps), 1, 60)
        settings |= {"num_frames": num_frames, "fps": fps}
        side = self.config.image_size
        grid = self.config.latent_grid(num_frames, side, side)
        cond = generation_layout(self.tokenizer.special, self._prompt_ids(prompt), 0)
        uncond = generation_layout(self.tokenizer.special, [], 0)
        frames, timings, _ = self._generate(cond, uncond, [], grid, 1, settings, progress)
        return VideoResult(frames[0][:num_frames], fps, settings, timings)

    @torch.no_grad()
    def edit(
        self,
        image: Image_,
        instruction: str,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        image_guidance: float | None = None,
        candidates: int | None = None,
        progress: Progress | None = None,
        think: bool | None = None,
    ) -> ImageResult:
        """Edit `image` by `instruction`.

        Thinking (`think`, the model's default): the model first says what the edited image will show
        (the `edit_caption` question, greedy; `settings["thought"]`), then draws that description as
        text-to-image does, `candidates` draws ranked by how closely it describes each to the thought. A
        thought that is the model's description of the source warns that it changed nothing.
        Without thinking the result is drawn from source and instruction directly (InstructPix2Pix's two
        guidance scales); with `candidates` k > 1 a result the model describes exactly as it describes the
        source (an edit that changed nothing) is drawn again, up to k draws in all."""
        settings = self._generation_settings("edit", instruction, "", seed, steps, guidance)
        settings["instruction"] = settings.pop("prompt")
        settings["candidates"] = self._check_candidates(_default(candidates, self.defaults.edit_candidates))
        image_guidance = self._check_guidance("image_guidance", _default(image_guidance, self.defaults.image_guidance))
        if think is not None and not isinstance(think, bool):
            raise ValueError(f"think must be true or false, got {think!r}")
        side = self.config.image_size
        grid = self.config.latent_grid(1, side, side)
        timings: dict[str, float] = {}
        with _Timer(timings, "encode"):
            source = self._encode_images([image])
        n = self.config.latent_tokens(source.shape[2:])
        special = self.tokenizer.special
        settings["think"] = _default(think, self.defaults.edit_think)
        if settings["think"]:
            question = self._prompt_ids(edit_caption_question(instruction))
            with _Timer(timings, "think"):
                layout = understanding_layout(special, [n], question)
                answer = self._decode(layout, [source], self.defaults.max_new_tokens, 0.0, None)
                settings["thought"] = self.tokenizer.decode(list(answer))
            # As a prompt: words only (an untrained model may write special tokens, which decoding drops).
            thought = self._prompt_ids(settings["thought"], allow_empty=True)
            if thought:  # an empty plan (an untrained model) leaves the edit to source and instruction
                return self._draw_thought(source, thought, settings, grid, timings, progress)
        settings["image_guidance"] = image_guidance  # only here: a thinking edit has no source branch to weigh
        cond = editing_layout(special, n, self._prompt_ids(instruction), 0)
        uncond = editing_layout(special, n, [], 0)
        # The branch with neither source nor instruction is text-to-image's unconditional one.
        empty = generation_layout(special, [], 0) if settings["image_guidance"] != 1.0 else None
        frames, more, changed = self._generate(
            cond, uncond, [source], grid, 1, settings, progress, empty=empty, source=source
        )
        self.last_timings = timings | more
        warnings = [] if changed else [unchanged_warning(settings["candidates"])]
        return ImageResult([Image.fromarray(frames[0][0])], settings, self.last_timings, warnings)

    def _draw_thought(
        self,
        source: torch.Tensor,
        thought: list[int],
        settings: dict[str, Any],
        grid: tuple[int, int, int],
        timings: dict[str, float],
        progress: Progress | None,
    ) -> ImageResult:
        """A thinking edit's second half: draw the thought as a prompt, and warn when it is the source's caption."""
        special = self.tokenizer.special
        cond, uncond = generation_layout(special, thought, 0), generation_layout(special, [], 0)
        frames, more, _ = self._generate(cond, uncond, [], grid, 1, settings, progress, check=settings["thought"])
        with _Timer(more, "self-check"):
            changed = thought != self._description_ids(source)
        self.last_timings = timings | more
        warnings = [] if changed else [unchanged_thought_warning(settings["thought"])]
        return ImageResult([Image.fromarray(frames[0][0])], settings, self.last_timings, warnings)

    def _generate(
        self,
        cond: Layout,
        uncond: Layout,
        clean: list[torch.Tensor],
        grid: tuple[int, int, int],
        count: int,
        settings: dict[str, Any],
        progress: Progress | None,
        empty: Layout | None = None,
        source: torch.Tensor | None = None,
        check: str | None = None,
    ) -> tuple[list[np.ndarray], dict[str, float], bool]:
        """Steps 2–5 shared by every generation task: prefill, noise, ODE, self-check, decode.

        `empty` (edits with image guidance) is a third branch with no clean image, so it has a
        prefix of its own. With `settings["candidates"]` k > 1 each output has k noise draws (the
        first is the single draw's). Generations denoise all k in one batch and decode only the one
        `self_check` prefers, scored against `check` (default: the prompt); an edit drawn from its
        source (`source` given) denoises them in turn, as `_first_change` asks.
        The flag is False only for an edit whose every draw the model read as its unchanged source."""
        timings: dict[str, float] = {}
        guidance = settings["guidance"]
        candidates = settings.get("candidates", 1)
        draws = count * candidates  # candidate c of output j is row j·k + c
        rows = count if source is not None else draws  # rows denoised at once
        use_cfg = guidance != 1.0 or empty is not None
        prefixes = [prefix_layout(cond)] * rows + ([prefix_layout(uncond)] * rows if use_cfg else [])
        clean = [lat.expand(len(prefixes), *lat.shape[1:]).to(self.device) for lat in clean]
        with _Timer(timings, "prefill"):
            ctx = self.model.prefill(prefixes, clean)
            empty_ctx = None if empty is None else self.model.prefill([prefix_layout(empty)] * rows, [])
        generator = torch.Generator().manual_seed(settings["seed"])
        # Drawn on the CPU from the caller's seed, so a seed means the same noise on every device.
        noise = torch.randn((draws, self.config.latent_channels, *grid), generator=generator).to(self.device)
        shift = self.defaults.time_shift
        times = time_grid(settings["steps"], self.model.shift_for(grid) if shift is None else shift)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            visual = self.units.visual(x)  # every branch sees the same x_t: encode it once
            if not use_cfg:
                return self.model.denoise(ctx, x, t, visual=visual)
            both = torch.cat([visual, visual])
            v = self.model.denoise(ctx, torch.cat([x, x]), torch.cat([t, t]), visual=both)
            if empty_ctx is None:
                return guided(v, guidance)
            v_empty = self.model.denoise(empty_ctx, x, t, visual=visual)
            return guided_edit(torch.cat([v, v_empty]), guidance, settings["image_guidance"])

        def draw(x0: torch.Tensor) -> Iterator[OdeStep]:
            """Denoise `x0` step by step, timing each step and reporting it to `progress`."""
            steps = ode_steps(velocity, x0, times, solver=self.defaults.solver)
            while True:
                with _Timer(timings, "denoise"):
                    step = next(steps, None)
                if step is None:
                    return
                if progress is not None:
                    progress(step.done, step.total)
                yield step

        changed = True
        if source is not None:
            latents, changed = self._first_change(draw, noise, source, timings)
        else:
            latents = _last(draw(noise)).x
            if candidates > 1:
                with _Timer(timings, "self-check"):
                    latents = self.self_check(latents, check or settings["prompt"], candidates)
        with _Timer(timings, "decode"):
            pixels = self.units.vae_decode(latents)  # (B, 3, T, H, W)
        self.last_timings = timings
        return list(to_frames(pixels)), timings, changed

    @torch.no_grad()
    def self_check(self, latents: torch.Tensor, prompt: str, candidates: int) -> torch.Tensor:
        """Of each run of `candidates` latents, keep the one the model itself describes most like the prompt.

        The unified model's understanding half judges its generation half: it is asked to describe
        each candidate (clean latents, no decode) and scored by the likelihood of answering with the
        prompt. Ties keep the earliest candidate, which is the one a single draw would give.
        """
        layout = self._description_layout(latents, self._prompt_ids(prompt))
        scores = self.model.text_logprob([layout] * len(latents), [latents]).view(-1, candidates)
        best = scores.argmax(dim=1)
        return latents.view(-1, candidates, *latents.shape[1:])[torch.arange(len(best)), best]

    def _first_change(
        self,
        draw: Callable[[torch.Tensor], Iterator[OdeStep]],
        noise: torch.Tensor,
        source: torch.Tensor,
        timings: dict[str, float],
    ) -> tuple[torch.Tensor, bool]:
        """Denoise the rows of `noise` in turn and return the first result that changed the source, and True.

        Every instruction asks for a change, so a result the model describes exactly as it describes
        `source` is a failed edit whatever was asked (measured: none of them is right), and the next
        draw gets its chance. The source is described once (a greedy decode); a draw is then checked by
        one teacher-forced pass asking whether the model would say the same (`TunaModel.says`), and a
        further draw is paid for only when the previous one changed nothing. A draw is checked twice:
        part-way, on the clean latents its step points at (`edit_early_check` of its steps; most no-op
        draws already read as the source there), where one that reads as the source is dropped at once,
        and at its end. If none changed anything the first draw is finished and kept, with False, so
        one draw and k draws agree whenever the first draw does something. A single draw is not checked
        (True): that costs nothing, and knows nothing."""
        if len(noise) == 1:
            return _last(draw(noise)).x, True
        with _Timer(timings, "self-check"):
            before = self._description_ids(source)

        def reads_as_source(latents: torch.Tensor) -> bool:
            with _Timer(timings, "self-check"):
                # A source description cut off at max_new_tokens has no [eos] to match, so every draw reads as
                # changed and the first is kept: the check then costs one caption and changes nothing.
                return bool(self.model.says([self._description_layout(latents, before)], [latents])[0])

        first = None
        for row in noise.split(1):
            steps = draw(row)
            for step in steps:
                if step.done == step.total:
                    if not reads_as_source(step.x):
                        return step.x, True
                elif step.done == round(self.defaults.edit_early_check * step.total) and reads_as_source(step.clean):
                    break  # still the source part-way: drop this draw here
            first = first or (step, steps)
        step, steps = first
        return _last(itertools.chain([step], steps)).x, False

    def _description_ids(self, latents: torch.Tensor) -> list[int]:
        """The model's own greedy description of clean latents (1, C, T, h, w), read without decoding them."""
        layout = self._description_layout(latents)
        return list(self._decode(layout, [latents], self.defaults.max_new_tokens, 0.0, None))

    def _description_layout(self, latents: torch.Tensor, answer_ids: list[int] | None = None) -> Layout:
        """Latents followed by "Describe the image." (or the video), with `answer_ids` as its answer if given."""
        question = DESCRIBE_VIDEO if latents.shape[2] > 1 else DESCRIBE_IMAGE
        return understanding_layout(
            self.tokenizer.special,
            [self.config.latent_tokens(latents.shape[2:])],
            self.tokenizer.encode(question),
            answer_ids,
        )

    # -- input handling ---------------------------------------------------------------------------
    def _encode_images(self, images: Sequence[Image_]) -> torch.Tensor:
        side = self.config.image_size
        arrays = [np.asarray(to_rgb(img, self.limits).resize((side, side), Image.Resampling.BICUBIC)) for img in images]
        return self.units.vae_encode(to_pixels(np.stack(arrays)).to(self.device))

    def _encode_video(self, video: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 → latents, resampled to the model's frame count and size."""
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"expected video frames of shape (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
        n = self.config.video_frames
        index = np.linspace(0, len(video) - 1, n).round().astype(int)
        side = self.config.image_size
        frames = [np.asarray(Image.fromarray(video[i]).resize((side, side), Image.Resampling.BICUBIC)) for i in index]
        return self.units.vae_encode(to_pixels(np.stack(frames)[None]).to(self.device))

    def _chat_turns(self, messages: Sequence[dict[str, str]]) -> list[tuple[list[int], list[int] | None]]:
        if not messages or messages[-1].get("role") != "user":
            raise ValueError("messages must end with a user message")
        turns: list[tuple[list[int], list[int] | None]] = []
        for msg in messages:
            role, text = msg.get("role"), msg.get("content", "")
            if role == "user":
                turns.append((self._prompt_ids(text), None))
            elif role == "assistant" and turns and turns[-1][1] is None:
                turns[-1] = (turns[-1][0], self.tokenizer.encode(text))
            else:
                raise ValueError(f"unexpected message role {role!r} here; alternate 'user' and 'assistant'")
        return turns

    def _prompt_ids(self, text: str, *, allow_empty: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"prompt must be text, got {type(text).__name__}")
        text = text.strip()
        if not text:
            if allow_empty:
                return []
            raise ValueError("the prompt is empty; type what you want")
        if len(text) > self.limits.max_prompt_chars:
            raise ValueError(f"the prompt has {len(text)} characters; the limit is {self.limits.max_prompt_chars}")
        ids = self.tokenizer.encode(text)
        if len(ids) > self.config.max_text_tokens:
            raise ValueError(
                f"the prompt is {len(ids)} tokens long; this model takes at most {self.config.max_text_tokens}"
            )
        return ids

    def _generation_settings(
        self, task: str, prompt: str, negative: str, seed: int, steps: int | None, guidance: float | None
    ) -> dict[str, Any]:
        self._prompt_ids(prompt)
        seed = self._check_int("seed", seed, 0, 2**63 - 1)
        steps = self._check_int(
            "steps", _default(steps, self.defaults.steps), self.limits.min_steps, self.limits.max_steps
        )
        guidance = self._check_guidance("guidance", _default(guidance, self.defaults.guidance))
        return {
            "task": task,
            "prompt": prompt.strip(),
            "negative_prompt": negative.strip(),
            "seed": seed,
            "steps": steps,
            "guidance": guidance,
            "solver": self.defaults.solver,
            "model": self.model_id,
        }

    def _check_guidance(self, name: str, value: Any) -> float:
        low, high = self.limits.min_guidance, self.limits.max_guidance
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number between {low} and {high}, got {value!r}")
        if not low <= float(value) <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
        return float(value)

    def _check_candidates(self, value: Any) -> int:
        return self._check_int("candidates", value, 1, self.limits.max_candidates)

    def _check_side(self, name: str, value: int) -> int:
        m = self.config.size_multiple
        value = self._check_int(name, value, m, self.config.max_image_side)
        if value % m:
            raise ValueError(f"{name} must be a multiple of {m}, got {value}; try {max(m, value // m * m)}")
        return value

    def _check_frames(self, value: int) -> int:
        k = self.config.temporal_compression
        value = self._check_int("num_frames", value, 1, self.config.max_video_frames)
        if (value - 1) % k:
            raise ValueError(f"num_frames must be {k}·n+1 for this VAE (e.g. 17, 33), got {value}")
        return value

    @staticmethod
    def _check_int(name: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or int(value) != value:
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if not low <= int(value) <= high:
            raise ValueError(f"{name} must be between {low} and {high}, got {value}")
        return int(value)


def _default(value: Any, default: Any) -> Any:
    """`default` only when the caller gave nothing (0 is a value to validate, not a default)."""
    return default if value is None else value


def _last(steps: Iterable[OdeStep]) -> OdeStep:
    """The last of a solve's steps (where it lands), run to the end."""
    return collections.deque(steps, maxlen=1)[0]


def unchanged_thought_warning(thought: str) -> str:
    """An edit whose thought is how the model describes the source: it read the instruction as changing nothing."""
    return (
        f"The model's plan ({thought!r}) is how it describes the source image, so the edit probably changed "
        "nothing: name an object the image shows, or try other words."
    )


def unchanged_warning(draws: int) -> str:
    """What to tell the user when the model read every one of `draws` edit draws as the unchanged source."""
    return (
        f"The model describes all {draws} draws exactly as it describes the source image, so the edit probably "
        "changed nothing: try another seed, more draws, or other words."
    )


class _Timer:
    """Context manager adding elapsed seconds to `timings[name]`."""

    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = self.timings.get(self.name, 0.0) + time.perf_counter() - self.start
