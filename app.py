"""TUNA Studio: chat, text→image, text→video and editing with one TUNA model, plus ratings for annotators.

`build_demo(pipeline, store)` only wires widgets to `TunaPipeline` calls and the annotation store;
`main()` parses the flags, loads the model and serves. Importing this module does nothing else.

API (gradio_client): /chat, /text_to_image, /text_to_video and /edit, with the parameter names
the README lists; every setting is optional and defaults to the model's `SamplerConfig`.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import spaces
import torch
from PIL import Image

from tuna_core.annotations import AnnotationStore, Result
from tuna_core.config import BUNDLED_MODEL, PRESETS, Limits, ModelConfig
from tuna_core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_image, load_video
from tuna_core.pipeline import TunaPipeline
from tuna_core.system import system_markdown

log = logging.getLogger("tuna.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "assets" / "examples"
ENGINES = ("auto", "tensorrt", "compile", "eager")
# The Ratings table shows the judgement first; exports carry every column (settings included).
RATING_COLUMNS = (
    "id",
    "created_at",
    "annotator",
    "kind",
    "task",
    "score",
    "choice",
    "comment",
    "prompt",
    "seed",
    "output",
)
QUEUE_SIZE = 16  # waiting requests; one more gets Gradio's "queue is full" message

# Examples: named dicts, one per row; every dict in a list names the same inputs.
CHAT_EXAMPLES = [
    {"message": {"text": "What color is the circle?", "files": [str(EXAMPLES / "red_circle_blue_square.png")]}},
    {"message": {"text": "Describe the image.", "files": [str(EXAMPLES / "three_shapes.png")]}},
    {
        "message": {
            "text": "Which way is the red circle moving?",
            "files": [str(EXAMPLES / "red_circle_moving_right.mp4")],
        }
    },
]
IMAGE_EXAMPLES = [
    {"prompt": "a large red circle at the top left and a small blue square in the center on a black background"},
    {"prompt": "a small green triangle at the top right and a large yellow square at the bottom on a gray background"},
    {"prompt": "a large magenta circle at the bottom and a small cyan square at the top on a white background"},
]
VIDEO_EXAMPLES = [
    {"prompt": "a small blue square at the top and a large red circle moving right from the left"},
    {"prompt": "a small yellow triangle moving down from the top on a gray background"},
]
EDIT_EXAMPLES = [
    {"image": str(EXAMPLES / "red_circle_blue_square.png"), "instruction": "make the red circle blue"},
    {"image": str(EXAMPLES / "three_shapes.png"), "instruction": "remove the yellow square"},
    {"image": str(EXAMPLES / "red_circle_blue_square.png"), "instruction": "move the red circle to the bottom right"},
]

INTRO = """\
# TUNA Studio
**TUNA** is a native unified multimodal model ([arXiv 2512.02014](https://arxiv.org/abs/2512.02014)): one language
model reads and writes one continuous visual representation (a video VAE followed by a representation encoder),
so the same weights answer questions about images and videos, draw images and clips from text, and edit images.
"""

# 64×64 outputs are shown large; nearest-neighbour scaling keeps their pixels sharp instead of blurred.
CSS = """
.pixelated img, .pixelated video, .pixelated canvas { image-rendering: pixelated; }
.pixelated img, .pixelated video { object-fit: contain; }
#chat-conversation img { min-width: 160px; min-height: 160px; }
.tuna-note { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 6px 12px; border-radius: 6px; }
.tuna-note p { color: #78350f !important; margin: 0; }
.tuna-model { font-size: 0.95em; opacity: 0.85; }
"""
THEME = gr.themes.Soft(primary_hue="indigo")

# One GPU job at a time, across all tabs. The pipeline checks every value and names the setting in
# its error, so inputs reach it unprocessed: Gradio's own checks would say "Value 500 is greater
# than maximum value 200." without naming the slider, and a corrupt upload would fail inside
# Gradio's image decoder with no message at all.
GPU_EVENT: dict[str, Any] = {"concurrency_id": "gpu", "concurrency_limit": 1, "preprocess": False}
# Ratings, listings and widget updates are quick and must not wait behind (or be refused with) generation jobs.
QUICK_EVENT: dict[str, Any] = {"queue": False, "show_progress": "minimal"}
# Endpoints for scripts and tests (rate, list, export), callable by gradio_client but kept out of the API page.
UNDOCUMENTED: dict[str, Any] = {"api_visibility": "undocumented", **QUICK_EVENT}


@contextmanager
def _as_gradio_error() -> Iterator[None]:
    """Bad input raises ValueError (MediaError included) with one plain sentence; show it to the user as is."""
    try:
        yield
    except ValueError as err:
        raise gr.Error(str(err)) from None


def _upload_path(payload: dict[str, Any] | str | None) -> str | None:
    """The server-side path of an unprocessed upload (a FileData dict; a plain path from trusted callers)."""
    return payload.get("path") if isinstance(payload, dict) else payload


def _load_attachments(paths: Sequence[str], limits: Limits) -> tuple[list[Image.Image], list[np.ndarray]]:
    """Chat attachments → images and videos, by file type, with the media module's size and corruption checks."""
    images, videos = [], []
    for path in paths:
        suffix = Path(path).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            images.append(load_image(path, limits))
        elif suffix in VIDEO_SUFFIXES:
            videos.append(load_video(path, limits)[0])
        else:
            raise ValueError(
                f"{Path(path).name}: unsupported file type {suffix or '(none)'}; "
                f"attach an image ({', '.join(IMAGE_SUFFIXES)}) or a video ({', '.join(VIDEO_SUFFIXES)})"
            )
    return images, videos


def _denoising(progress: gr.Progress) -> Callable[[int, int], None]:
    """The pipeline's per-step callback, drawn as Gradio's progress bar."""
    return lambda step, total: progress((step, total), desc="Denoising", unit="steps")


def _size_presets(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """Aspect-ratio shortcuts (width, height) within the model's size limits."""
    s, big = config.image_size, min(2 * config.image_size, config.max_image_side)
    return {
        f"Square {s}×{s}": (s, s),
        f"Wide {big}×{s}": (big, s),
        f"Tall {s}×{big}": (s, big),
        f"Large {big}×{big}": (big, big),
    }


def _examples(rows: list[dict[str, Any]], inputs: dict[str, gr.components.Component]) -> gr.Examples:
    """gr.Examples from named dicts; clicking one fills the inputs (the caller chains the run)."""
    return gr.Examples([[row[name] for name in inputs] for row in rows], list(inputs.values()), examples_per_page=6)


def _run_from(
    io: dict[str, Any], button: gr.Button, textbox: gr.Textbox, examples: gr.Examples, api_name: str | None = None
) -> None:
    """Run one generation tab's function from its button, Enter in its prompt box, or a click on an example.

    Only the button's event is a public API endpoint (when `api_name` is given), so each task is listed once.
    """
    visibility: dict[str, Any] = {"api_name": api_name} if api_name else {"api_visibility": "private"}
    button.click(**io, **visibility, **GPU_EVENT)
    textbox.submit(**io, api_visibility="private", **GPU_EVENT)
    examples.load_input_event.then(**io, api_visibility="private", **GPU_EVENT)


def _new_chat() -> dict[str, list[Any]]:
    """An empty conversation: the pipeline's messages, the attachment paths and what the chatbot shows."""
    return {"messages": [], "attachments": [], "display": []}


def _new_chat_outputs() -> tuple[list[Any], dict[str, list[Any]], list[Result]]:
    """Empty chatbot, conversation and results (Clear, or before an example runs)."""
    return [], _new_chat(), []


def _plan(results: list[Result]) -> str:
    """What a thinking edit said the result would show, shown beside it (empty for an edit drawn directly)."""
    thought = results[0].settings.get("thought") if results else None
    return f"**The model's plan:** {thought}" if thought else ""


def _describe(results: list[Result], index: int) -> str:
    """One line naming the result a rating will be attached to."""
    if not results:
        return "*Nothing to rate yet — generate a result first.*"
    result = results[min(index, len(results) - 1)]
    which = f"image {index + 1} of {len(results)}, " if len(results) > 1 else ""
    return f"Rating {which}`{result.output}` · seed {result.seed} · model {result.model_id}"


def _seed_row(label: str = "Seed") -> gr.Number:
    """A seed box with a button that draws a fresh random seed."""
    with gr.Row(equal_height=True):
        seed = gr.Number(label=label, value=0, precision=0, minimum=0, scale=3)
        dice = gr.Button("Random seed", scale=1, size="md")
    dice.click(lambda: random.randrange(2**31), None, seed, api_visibility="private", **QUICK_EVENT)
    return seed


def _rating_panel(
    store: AnnotationStore, results: gr.State, annotator: gr.Textbox, api_name: str, selected: gr.State | None = None
) -> None:
    """Score (1–5) and comment for the shown result (for a gallery: the selected image)."""
    selected = selected or gr.State(0)
    with gr.Group():
        details = gr.Markdown(_describe([], 0), padding=True)
        with gr.Row(equal_height=True):
            score = gr.Radio([1, 2, 3, 4, 5], label="Score (1 = wrong, 5 = right)", scale=2, min_width=230)
            comment = gr.Textbox("", label="Comment", placeholder="optional: what is right or wrong", scale=3)
            save = gr.Button("Save rating", variant="secondary", scale=1)
        status = gr.Markdown(padding=True)

    def rate(results: list[Result], index: int, score: int | None, comment: str, annotator: str) -> str:
        with _as_gradio_error():
            row = store.rate(results[index] if results else None, score, comment, annotator)
        return f"Saved rating #{row} ({score}/5)."

    save.click(rate, [results, selected, score, comment, annotator], status, api_name=api_name, **UNDOCUMENTED)
    gr.on(
        [results.change, selected.change],
        lambda results, index: (_describe(results, index), ""),  # a new result: the last "Saved" no longer applies
        [results, selected],
        [details, status],
        api_visibility="private",
        **QUICK_EVENT,
    )


def build_demo(
    pipeline: TunaPipeline, store: AnnotationStore, *, notes: Sequence[str] = (), queue_size: int = QUEUE_SIZE
) -> gr.Blocks:
    """The whole app for one loaded pipeline; `notes` are warnings shown under the header (e.g. random weights)."""
    config, defaults, limits = pipeline.config, pipeline.defaults, pipeline.limits
    presets = _size_presets(config)

    def steps_slider() -> gr.Slider:
        return gr.Slider(limits.min_steps, limits.max_steps, value=defaults.steps, step=1, label="Denoising steps")

    def guidance_slider() -> gr.Slider:
        return gr.Slider(
            limits.min_guidance, limits.max_guidance, value=defaults.guidance, step=0.5, label="Guidance (CFG)"
        )

    def candidates_slider(
        value: int, info: str = "draw this many and keep the one the model itself describes most like the prompt"
    ) -> gr.Slider:
        return gr.Slider(1, limits.max_candidates, value=value, step=1, label="Self-check candidates", info=info)

    def image_output(label: str, elem_id: str) -> gr.Image:
        return gr.Image(
            label=label,
            type="filepath",
            format="png",
            interactive=False,
            height=360,
            elem_id=elem_id,
            elem_classes="pixelated",
        )

    with gr.Blocks(title="TUNA Studio", analytics_enabled=False) as demo:
        with gr.Row():
            with gr.Column(scale=4):
                gr.Markdown(INTRO)
                gr.Markdown(
                    f"Model: **{pipeline.model_id}** on `{pipeline.device}` · Shapes World scenes, "
                    f"{config.image_size}×{config.image_size} pixels",
                    elem_classes="tuna-model",
                )
            with gr.Column(scale=1, min_width=220):
                annotator = gr.Textbox(
                    label="Annotator name", placeholder="saved with each rating", max_lines=1, elem_id="annotator"
                )
        for note in notes:
            gr.Markdown(f"⚠️ {note}", elem_classes="tuna-note")

        # -- Chat -----------------------------------------------------------------------------------
        with gr.Tab("Chat", id="chat", elem_id="tab-chat"):
            conversation = gr.State(_new_chat())
            chat_results = gr.State([])
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Conversation",
                        height=440,
                        placeholder="Attach an image or a video and ask about it, or pick an example.",
                        elem_id="chat-conversation",
                        elem_classes="pixelated",
                        feedback_options=None,
                        buttons=["copy"],
                    )
                    message = gr.MultimodalTextbox(
                        label="Message",
                        placeholder="Ask about an image or a video; attach one or more with the clip button",
                        file_types=["image", "video"],
                        file_count="multiple",
                    )
                    with gr.Row():
                        stop = gr.Button("Stop", variant="stop", size="sm")
                        clear = gr.Button("Clear conversation", size="sm")
                with gr.Column(scale=2):
                    chat_examples = _examples(CHAT_EXAMPLES, {"message": message})
                    _rating_panel(store, chat_results, annotator, "rate_chat")

        @spaces.GPU
        def respond(message: dict[str, Any] | None, conversation: dict[str, list[Any]]) -> Iterator[tuple[Any, ...]]:
            """Stream the answer into the chat; the conversation keeps the partial answer if stopped."""
            text = (message or {}).get("text", "")
            files = [_upload_path(f) for f in (message or {}).get("files", [])]
            attachments = conversation["attachments"] + files
            messages = [*conversation["messages"], {"role": "user", "content": text}]
            display = [*conversation["display"], {"role": "user", "content": [*({"path": f} for f in files), text]}]
            answer = ""
            with _as_gradio_error():
                images, videos = _load_attachments(attachments, limits)
                for answer in pipeline.chat_stream(messages, images, videos):
                    reply = {"role": "assistant", "content": answer}
                    state = {"messages": [*messages, reply], "attachments": attachments, "display": [*display, reply]}
                    yield state["display"], None, state, []
            settings = {
                "task": "chat",
                "prompt": text.strip(),
                "seed": 0,
                "max_new_tokens": defaults.max_new_tokens,
                "temperature": defaults.temperature,
                "model": pipeline.model_id,
            }
            result = store.save_chat(messages, answer, attachments, settings)
            yield gr.skip(), gr.skip(), gr.skip(), [result]

        chat_io = {
            "fn": respond,
            "inputs": [message, conversation],
            "outputs": [chatbot, message, conversation, chat_results],
        }
        chat_run = message.submit(**chat_io, api_visibility="private", **GPU_EVENT)
        chat_example_run = chat_examples.load_input_event.then(
            _new_chat_outputs, None, [chatbot, conversation, chat_results], api_visibility="private", **QUICK_EVENT
        ).then(**chat_io, api_visibility="private", **GPU_EVENT)
        stop.click(None, cancels=[chat_run, chat_example_run])
        clear.click(
            _new_chat_outputs,
            None,
            [chatbot, conversation, chat_results],
            cancels=[chat_run, chat_example_run],
            api_visibility="private",
            **QUICK_EVENT,
        )

        # -- Text → Image ---------------------------------------------------------------------------
        with gr.Tab("Text → Image", id="t2i", elem_id="tab-t2i"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", lines=3, placeholder=IMAGE_EXAMPLES[0]["prompt"])
                    negative = gr.Textbox("", label="Negative prompt", placeholder="what to steer away from (optional)")
                    seed = _seed_row()
                    size = gr.Radio(list(presets), value=next(iter(presets)), label="Size")
                    with gr.Accordion("Settings", open=False):
                        steps, guidance = steps_slider(), guidance_slider()
                        m = config.size_multiple
                        width = gr.Slider(m, config.max_image_side, value=config.image_size, step=m, label="Width")
                        height = gr.Slider(m, config.max_image_side, value=config.image_size, step=m, label="Height")
                        image_candidates = candidates_slider(defaults.image_candidates)
                        count = gr.Slider(1, limits.max_num_images, value=1, step=1, label="Number of images")
                    t2i_button = gr.Button("Generate", variant="primary")
                    t2i_examples = _examples(IMAGE_EXAMPLES, {"prompt": prompt})
                with gr.Column(scale=3):
                    gallery = gr.Gallery(
                        label="Images (PNG files, settings in their metadata)",
                        columns=2,
                        height=420,
                        object_fit="contain",
                        format="png",
                        buttons=["download", "fullscreen"],
                        elem_id="t2i-gallery",
                        elem_classes="pixelated",
                    )
                    t2i_results, t2i_selected = gr.State([]), gr.State(0)
                    _rating_panel(store, t2i_results, annotator, "rate_image", t2i_selected)
            api_image = gr.Image(label="image", type="filepath", format="png", visible=False)

        def generate_images(
            prompt: str,
            negative_prompt: str,
            seed: int,
            steps: int,
            guidance: float,
            width: int,
            height: int,
            num_images: int,
            candidates: int | None,
            progress: gr.Progress,
        ) -> list[Result]:
            """The one text→image call behind the tab, the API and the comparison; every image is saved."""
            with _as_gradio_error():
                result = pipeline.text_to_image(
                    prompt,
                    negative_prompt,
                    seed,
                    steps,
                    guidance,
                    height,
                    width,
                    num_images,
                    candidates,
                    _denoising(progress),
                )
            return [store.save_image(image, result.settings | {"index": i}) for i, image in enumerate(result.images)]

        @spaces.GPU
        def text_to_image_gallery(
            prompt: str,
            negative_prompt: str,
            seed: int,
            steps: int,
            guidance: float,
            width: int,
            height: int,
            candidates: int,
            num_images: int,
            progress: gr.Progress = gr.Progress(),
        ) -> tuple[list[str], list[Result], int]:
            """The tab's images, all saved under the data folder; the first one is selected for rating."""
            results = generate_images(
                prompt, negative_prompt, seed, steps, guidance, width, height, num_images, candidates, progress
            )
            return [str(store.path(r)) for r in results], results, 0

        @spaces.GPU
        def text_to_image(
            prompt: str,
            negative_prompt: str = "",
            seed: int = 0,
            steps: int | None = None,
            guidance: float | None = None,
            width: int | None = None,
            height: int | None = None,
            candidates: int | None = None,
            progress: gr.Progress = gr.Progress(),
        ) -> str:
            """Generate one image from a prompt; returns the PNG (prompt, seed and settings in its text chunks)."""
            (result,) = generate_images(
                prompt, negative_prompt, seed, steps, guidance, width, height, 1, candidates, progress
            )
            return str(store.path(result))

        t2i_io = {
            "fn": text_to_image_gallery,
            "inputs": [prompt, negative, seed, steps, guidance, width, height, image_candidates, count],
            "outputs": [gallery, t2i_results, t2i_selected],
        }
        _run_from(t2i_io, t2i_button, prompt, t2i_examples)
        gr.on([], text_to_image, t2i_io["inputs"][:-1], api_image, api_name="text_to_image", **GPU_EVENT)
        size.change(lambda name: presets[name], size, [width, height], api_visibility="private", **QUICK_EVENT)

        def select_image(event: gr.SelectData) -> int:
            return event.index

        gallery.select(select_image, None, t2i_selected, api_visibility="private", **QUICK_EVENT)

        # -- Text → Video ---------------------------------------------------------------------------
        with gr.Tab("Text → Video", id="t2v", elem_id="tab-t2v"), gr.Row():
            with gr.Column(scale=2):
                video_prompt = gr.Textbox(label="Prompt", lines=3, placeholder=VIDEO_EXAMPLES[0]["prompt"])
                video_seed = _seed_row()
                with gr.Accordion("Settings", open=False):
                    video_steps, video_guidance = steps_slider(), guidance_slider()
                    k = config.temporal_compression
                    frames = gr.Slider(
                        1,
                        config.max_video_frames,
                        value=config.video_frames,
                        step=k,
                        label=f"Frames ({k}·n + 1)",
                    )
                    fps = gr.Slider(1, 60, value=config.video_fps, step=1, label="Frames per second")
                    video_candidates = candidates_slider(defaults.video_candidates)
                t2v_button = gr.Button("Generate video", variant="primary")
                t2v_examples = _examples(VIDEO_EXAMPLES, {"prompt": video_prompt})
            with gr.Column(scale=3):
                video = gr.Video(
                    label="Generated video (MP4)",
                    autoplay=True,
                    loop=True,
                    height=420,
                    interactive=False,
                    elem_id="t2v-video",
                    elem_classes="pixelated",
                )
                t2v_results = gr.State([])
                _rating_panel(store, t2v_results, annotator, "rate_video")

        @spaces.GPU
        def text_to_video(
            prompt: str,
            seed: int = 0,
            steps: int | None = None,
            guidance: float | None = None,
            num_frames: int | None = None,
            fps: int | None = None,
            candidates: int | None = None,
            progress: gr.Progress = gr.Progress(),
        ) -> tuple[str, list[Result]]:
            """Generate a clip from a prompt; returns the MP4 (H.264, settings in its comment tag)."""
            with _as_gradio_error():
                result = pipeline.text_to_video(
                    prompt, seed, steps, guidance, num_frames, fps, candidates, _denoising(progress)
                )
            saved = store.save_video(result.frames, result.fps, result.settings)
            return str(store.path(saved)), [saved]

        t2v_io = {
            "fn": text_to_video,
            "inputs": [video_prompt, video_seed, video_steps, video_guidance, frames, fps, video_candidates],
            "outputs": [video, t2v_results],
        }
        _run_from(t2v_io, t2v_button, video_prompt, t2v_examples, api_name="text_to_video")

        # -- Edit -----------------------------------------------------------------------------------
        with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
            with gr.Row():
                source = gr.Image(
                    label="Source image",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    height=360,
                    elem_classes="pixelated",
                )
                edited = image_output("Edited image", "edit-result")
            with gr.Row():
                with gr.Column(scale=2):
                    instruction = gr.Textbox(label="Instruction", placeholder=EDIT_EXAMPLES[0]["instruction"])
                    edit_seed = _seed_row()
                    with gr.Accordion("Settings", open=False):
                        edit_steps, edit_guidance = steps_slider(), guidance_slider()
                        image_guidance = gr.Slider(
                            limits.min_guidance,
                            limits.max_guidance,
                            value=defaults.image_guidance,
                            step=0.5,
                            label="Image guidance (keep the source)",
                        )
                        edit_candidates = candidates_slider(
                            defaults.edit_candidates,
                            "thinking: draw this many, keep the one the model describes closest to its plan; "
                            "otherwise: draw again while the result reads as the source, up to this many draws",
                        )
                        think = gr.Checkbox(
                            defaults.edit_think,
                            label="Think first: the model says what the result shows, then draws that",
                        )
                    edit_button = gr.Button("Edit", variant="primary")
                    edit_examples = _examples(EDIT_EXAMPLES, {"image": source, "instruction": instruction})
                with gr.Column(scale=3):
                    edit_plan = gr.Markdown(elem_id="edit-plan")
                    edit_results = gr.State([])
                    edit_results.change(_plan, edit_results, edit_plan, api_visibility="private")
                    _rating_panel(store, edit_results, annotator, "rate_edit")

        @spaces.GPU
        def edit(
            image: dict[str, Any] | None,
            instruction: str,
            seed: int = 0,
            steps: int | None = None,
            guidance: float | None = None,
            image_guidance: float | None = None,
            candidates: int | None = None,
            think: bool | None = None,
            progress: gr.Progress = gr.Progress(),
        ) -> tuple[str, list[Result]]:
            """Edit an image by an instruction; returns the edited PNG (the source is saved beside it).

            Warns (a toast; a log update for API clients) when the result still reads as the unchanged source."""
            with _as_gradio_error():
                path = _upload_path(image)
                if path is None:
                    raise ValueError("upload an image to edit")
                original = load_image(path, limits)
                result = pipeline.edit(
                    original,
                    instruction,
                    seed,
                    steps,
                    guidance,
                    image_guidance,
                    candidates,
                    progress=_denoising(progress),
                    think=think,
                )
            saved = store.save_image(result.images[0], result.settings, source=original)
            for warning in result.warnings:
                gr.Warning(warning)
            return str(store.path(saved)), [saved]

        edit_io = {
            "fn": edit,
            "inputs": [
                source,
                instruction,
                edit_seed,
                edit_steps,
                edit_guidance,
                image_guidance,
                edit_candidates,
                think,
            ],
            "outputs": [edited, edit_results],
        }
        _run_from(edit_io, edit_button, instruction, edit_examples, api_name="edit")

        # -- Compare A/B ----------------------------------------------------------------------------
        with gr.Tab("Compare A/B", id="compare", elem_id="tab-compare"):
            gr.Markdown("Two images from the **same prompt** with different seeds or settings: pick the better one.")
            ab_prompt = gr.Textbox(label="Prompt", lines=2, placeholder=IMAGE_EXAMPLES[0]["prompt"])
            ab_negative = gr.Textbox("", label="Negative prompt", placeholder="optional")
            ab_examples = _examples(IMAGE_EXAMPLES, {"prompt": ab_prompt})
            settings = {}
            with gr.Row():
                for name, default_seed in (("A", 0), ("B", 1)):
                    with gr.Column():
                        side_seed = gr.Number(label=f"Seed {name}", value=default_seed, precision=0, minimum=0)
                        with gr.Accordion(f"Settings {name}", open=False):
                            settings[name] = [side_seed, steps_slider(), guidance_slider()]
            ab_button = gr.Button("Generate A and B", variant="primary")
            with gr.Row():
                sides = {
                    name: (settings[name], image_output(f"Image {name}", f"compare-{name.lower()}"), gr.State([]))
                    for name in ("A", "B")
                }
            with gr.Row():
                choices = {"A": gr.Button("A is better"), "tie": gr.Button("Tie"), "B": gr.Button("B is better")}
            ab_comment = gr.Textbox("", label="Comment", placeholder="optional: why")
            ab_status = gr.Markdown(elem_id="compare-status")

        @spaces.GPU
        def generate_side(
            prompt: str,
            negative_prompt: str,
            seed: int,
            steps: int,
            guidance: float,
            progress: gr.Progress = gr.Progress(),
        ) -> tuple[str, list[Result]]:
            """One side of the comparison, at the model's default size."""
            (result,) = generate_images(prompt, negative_prompt, seed, steps, guidance, None, None, 1, None, progress)
            return str(store.path(result)), [result]

        def run_both(trigger: Any) -> None:
            (a_inputs, a_image, a_results), (b_inputs, b_image, b_results) = sides["A"], sides["B"]
            trigger(
                generate_side,
                [ab_prompt, ab_negative, *a_inputs],
                [a_image, a_results],
                api_visibility="private",
                **GPU_EVENT,
            ).then(
                generate_side,
                [ab_prompt, ab_negative, *b_inputs],
                [b_image, b_results],
                api_visibility="private",
                **GPU_EVENT,
            )

        run_both(ab_button.click)
        run_both(ab_examples.load_input_event.then)

        def choose(choice: str) -> Callable[[list[Result], list[Result], str, str], str]:
            def save(a: list[Result], b: list[Result], comment: str, annotator: str) -> str:
                with _as_gradio_error():
                    row = store.compare(a[0] if a else None, b[0] if b else None, choice, comment, annotator)
                return f"Saved comparison #{row}: {'tie' if choice == 'tie' else choice + ' is better'}."

            return save

        for choice, button in choices.items():
            button.click(
                choose(choice),
                [sides["A"][2], sides["B"][2], ab_comment, annotator],
                ab_status,
                api_name=f"compare_{choice.lower()}",
                **UNDOCUMENTED,
            )

        # -- Ratings --------------------------------------------------------------------------------
        with gr.Tab("Ratings", id="ratings", elem_id="tab-ratings") as ratings_tab:
            gr.Markdown(f"Every rating and comparison, newest first. Stored in `{store.db_path}`.")
            table = gr.Dataframe(
                headers=list(RATING_COLUMNS),
                type="array",
                interactive=False,
                wrap=True,
                max_height=480,
                elem_id="ratings-table",
            )
            with gr.Row():
                refresh = gr.Button("Refresh")
                export_csv = gr.Button("Export CSV")
                export_jsonl = gr.Button("Export JSONL")
            export_file = gr.File(label="Export", interactive=False, height=100)

        def list_ratings() -> list[list[Any]]:
            return [[row[column] for column in RATING_COLUMNS] for row in store.rows()]

        gr.on([refresh.click, ratings_tab.select], list_ratings, None, table, api_name="ratings", **UNDOCUMENTED)
        export_csv.click(lambda: str(store.export_csv()), None, export_file, api_name="export_csv", **UNDOCUMENTED)
        export_jsonl.click(
            lambda: str(store.export_jsonl()), None, export_file, api_name="export_jsonl", **UNDOCUMENTED
        )

        # -- System ---------------------------------------------------------------------------------
        with gr.Tab("System", id="system", elem_id="tab-system") as system_tab:
            system = gr.Markdown(system_markdown(pipeline), elem_id="system-info")
            system_refresh = gr.Button("Refresh", size="sm")
        gr.on(
            [system_refresh.click, system_tab.select],
            lambda: system_markdown(pipeline),
            None,
            system,
            api_name="system",
            **UNDOCUMENTED,
        )

        # -- API-only ---------------------------------------------------------------------------------
        api_message = gr.Textbox(label="message", visible=False)
        api_chat_image = gr.Image(label="image", type="filepath", visible=False)
        api_chat_video = gr.Video(label="video", visible=False)
        api_answer = gr.Textbox(label="answer", visible=False)

        @spaces.GPU
        def chat(message: str, image: dict[str, Any] | None = None, video: dict[str, Any] | None = None) -> str:
            """Answer one question about an image and/or a video (a single turn)."""
            image_path, video_path = _upload_path(image), _upload_path(video)
            messages = [{"role": "user", "content": message}]
            with _as_gradio_error():
                images = [load_image(image_path, limits)] if image_path else []
                videos = [load_video(video_path, limits)[0]] if video_path else []
                answer = pipeline.chat(messages, images, videos)
            settings = {"task": "chat", "prompt": message.strip(), "seed": 0, "model": pipeline.model_id}
            store.save_chat(messages, answer, [p for p in (image_path, video_path) if p], settings)
            return answer

        gr.on([], chat, [api_message, api_chat_image, api_chat_video], api_answer, api_name="chat", **GPU_EVENT)

    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    return demo


def launch_options(pipeline: TunaPipeline, store: AnnotationStore) -> dict[str, Any]:
    """What every `demo.launch` needs: the look, downloads from the data folder, the upload size limit."""
    return {
        "css": CSS,
        "theme": THEME,
        "allowed_paths": [str(store.root)],
        "max_file_size": pipeline.limits.max_upload_bytes,
    }


# -- loading and serving ---------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="TUNA Studio: chat, text→image, text→video and image editing.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help=f"checkpoint folder (default: the bundled {BUNDLED_MODEL.name})")
    source.add_argument("--preset", choices=PRESETS, help="build this model shape with random weights (no checkpoint)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve a network)")
    parser.add_argument("--port", type=int, help="port (default 7860, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TUNA_DATA_DIR", "data")),
        help="where outputs and ratings are kept (default: $TUNA_DATA_DIR or ./data)",
    )
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="back-end for the VAE and visual encoder")
    parser.add_argument("--memory-budget", type=float, metavar="GIB", help="GPU memory to plan the model into")
    parser.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="requests that may wait for the GPU")
    return parser.parse_args(argv)


def load_pipeline(args: argparse.Namespace) -> tuple[TunaPipeline, list[str]]:
    """The pipeline the flags ask for, and the warnings the page must show (random weights are never silent).

    With a memory budget the model stays on the CPU here: the planner's method (weight offload in
    particular) decides how it reaches the device.
    """
    device = "cpu" if args.memory_budget is not None else serving_device(args)
    if args.model:
        return TunaPipeline.from_pretrained(args.model, device=device), []
    if args.preset:
        note = f"Random weights: `--preset {args.preset}` builds the model without a checkpoint; outputs are noise."
        return TunaPipeline.from_pretrained(preset=args.preset, device=device), [note]
    if (BUNDLED_MODEL / "config.json").is_file():
        return TunaPipeline.from_pretrained(BUNDLED_MODEL, device=device), []
    note = (
        f"Random weights: the bundled model (assets/{BUNDLED_MODEL.name}) is not there yet, so this is the "
        "tiny preset with random weights. Its outputs are noise, not Shapes World scenes."
    )
    return TunaPipeline.from_pretrained(preset="tiny", device=device), [note]


def serving_device(args: argparse.Namespace) -> str:
    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def select_engine(pipeline: TunaPipeline, engine: str) -> None:
    """Swap the encoder/decoder units for compiled ones; engines/ logs each fallback in one line."""
    from engines import build_units

    pipeline.units = build_units(pipeline.model, backend=engine)


def apply_memory_plan(pipeline: TunaPipeline, budget_gib: float, device: str) -> str:
    """Ask the PAPAYA planner which serving method fits `budget_gib`, switch it on, and say so on the page."""
    from tuna_core.planner import apply_method, recommend_for_serving

    choice = recommend_for_serving(pipeline.model, int(budget_gib * 2**30), device)
    if choice.method is None:
        raise SystemExit(f"error: --memory-budget {budget_gib:g} GiB: {choice.reason}")
    apply_method(pipeline.model, choice.method, device=device)
    return (
        f"Memory plan for {budget_gib:g} GiB: method {choice.method!r}, up to {choice.batch} images per call "
        f"({choice.reason})."
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    start = time.perf_counter()
    pipeline, notes = load_pipeline(args)
    for note in notes:
        log.warning(note)
    if args.memory_budget is not None:
        notes.append(apply_memory_plan(pipeline, args.memory_budget, serving_device(args)))
        log.info(notes[-1])
    select_engine(pipeline, args.engine)
    log.info(
        "loaded %s on %s in %.1f s",
        pipeline.model_id,
        pipeline.device,
        time.perf_counter() - start,
    )
    store = AnnotationStore(args.data_dir)
    log.info("outputs and ratings go to %s", store.root)
    demo = build_demo(pipeline, store, notes=notes, queue_size=args.queue_size)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options(pipeline, store))


if __name__ == "__main__":
    main()
