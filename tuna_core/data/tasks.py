"""Seeded training and evaluation examples for every Shapes World task.

Edits and answers each have one deterministic oracle (`apply_edit`, `answer_question`) that
parses the text; the samplers only choose the text and ask the oracle, so what the trainer
sees and what the evaluator scores can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tuna_core.data import world
from tuna_core.data.world import (
    BACKGROUNDS,
    CENTER,
    COLORS,
    DIRECTIONS,
    MAX_OBJECTS,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    ShapeObject,
    caption,
    paraphrase,
    prompt_for,
    render_image,
    render_video,
    sample_scene,
    tokenize,
)

T = TypeVar("T")

TASKS: tuple[str, ...] = ("caption", "qa", "video_qa", "t2i", "t2v", "edit", "edit_caption")
VIDEO_TASKS = frozenset({"video_qa", "t2v"})  # the tasks whose scenes are 17-frame clips
PARAPHRASE_P = 0.25  # generation prompts: share of paraphrases (the rest are canonical)
DROP_SIZE_P = 0.15  # canonical generation prompts: chance to leave out each object's size
DROP_BACKGROUND_P = 0.15  # ... and the background phrase
PRESENT_P = 0.75  # object questions: share about objects in the scene (the rest: "there is no ...")

# Edit instructions (spec), plus the `in the center` form the spec also allows.
RECOLOR = "make the {color} {shape} {new_color}"
REMOVE = "remove the {color} {shape}"
ADD = "add a {size} {color} {shape} at the {position}"
ADD_CENTER = "add a {size} {color} {shape} in the center"
MOVE = "move the {color} {shape} to the {position}"

# Questions and answers (spec table).
COLOR_OF_SHAPE = "What color is the {shape}?"
SHAPE_OF_COLOR = "What shape is the {color} object?"
COUNT = "How many shapes are there?"
WHERE = "Where is the {color} {shape}?"
IS_THERE = "Is there a {color} {shape}?"
BACKGROUND = "What color is the background?"
DESCRIBE_IMAGE = "Describe the image."
WHICH_WAY = "Which way is the {color} {shape} moving?"
DESCRIBE_VIDEO = "Describe the video."
NO_SHAPE = "there is no {shape}"
NO_COLOR = "there is no {color} object"
NO_OBJECT = "there is no {color} {shape}"
NOT_MOVING = "not moving"
YES, NO = "yes", "no"
COUNT_WORDS = ("one", "two", "three")


def _alt(words: object) -> str:
    return "(" + "|".join(sorted((re.escape(str(w)) for w in words), key=len, reverse=True)) + ")"


_COLOR, _SHAPE, _SIZE, _POS = _alt(COLORS), _alt(SHAPES), _alt(SIZES), _alt(POSITIONS)
_EDIT_RES: dict[str, re.Pattern[str]] = {
    "recolor": re.compile(rf"make the {_COLOR} {_SHAPE} {_COLOR}"),
    "remove": re.compile(rf"remove the {_COLOR} {_SHAPE}"),
    "add": re.compile(rf"add a {_SIZE} {_COLOR} {_SHAPE} (?:at|in) the {_POS}"),
    "move": re.compile(rf"move the {_COLOR} {_SHAPE} to the {_POS}"),
}
_QUESTION_RES: dict[str, re.Pattern[str]] = {
    "background": re.compile(r"what color is the background\?"),
    "color_of_shape": re.compile(rf"what color is the {_SHAPE}\?"),
    "shape_of_color": re.compile(rf"what shape is the {_COLOR} object\?"),
    "count": re.compile(r"how many shapes are there\?"),
    "where": re.compile(rf"where is the {_COLOR} {_SHAPE}\?"),
    "is_there": re.compile(rf"is there a {_COLOR} {_SHAPE}\?"),
    "describe": re.compile(r"describe the (?:image|video)\."),
    "which_way": re.compile(rf"which way is the {_COLOR} {_SHAPE} moving\?"),
}


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _pick(rng: np.random.Generator, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def _position_phrase(template: str, center_template: str, cell: int, rng: np.random.Generator, **slots: str) -> str:
    """Fill `template`; for the centre use `at the center` or `in the center` at random (both are valid)."""
    if cell == CENTER and rng.random() < 0.5:
        return center_template.format(**slots)
    return template.format(position=POSITIONS[cell], **slots)


# -- edits ------------------------------------------------------------------------------------
def _parse_edit(instruction: str) -> tuple[str, re.Match[str]]:
    text = _normalise(instruction).removesuffix(".")
    for op, pattern in _EDIT_RES.items():
        if match := pattern.fullmatch(text):
            return op, match
    raise ValueError(
        f"cannot parse edit {instruction!r}; use e.g. {RECOLOR!r}, {REMOVE!r}, {ADD!r} or {MOVE!r} with world words"
    )


def edit_kind(instruction: str) -> str:
    """Which of the four spec edits `instruction` asks for: recolor, remove, add or move.

    The eval scores edits per kind with it, since the kinds fail in different ways. Raises
    ValueError naming the text when it is not a spec edit.
    """
    return _parse_edit(instruction)[0]


def apply_edit(scene: Scene, instruction: str) -> Scene:
    """The scene an edit instruction asks for; untouched objects keep size and jitter.

    Added and moved objects are placed at the exact cell centre (no jitter), so the expected
    result is a pure function of scene and text. Raises ValueError when the instruction cannot
    be parsed or does not apply (unknown object, occupied cell, duplicate name, last object).
    """
    if scene.is_video:
        raise ValueError("edits apply to still images; this scene has moving objects")
    op, match = _parse_edit(instruction)
    occupied = {o.cell for o in scene.objects}
    if op == "add":
        size, color, shape, position = match.groups()
        cell = POSITIONS.index(position)
        if cell in occupied:
            raise ValueError(f"edit {instruction!r} does not apply: the {position} is occupied")
        if scene.find(color, shape) is not None:
            raise ValueError(f"edit {instruction!r} does not apply: the scene already has a {color} {shape}")
        if len(scene.objects) >= MAX_OBJECTS:
            raise ValueError(f"edit {instruction!r} does not apply: the scene already has {MAX_OBJECTS} objects")
        return scene.replace(None, ShapeObject(shape, color, size, cell))
    color, shape = match.group(1), match.group(2)
    target = scene.find(color, shape)
    if target is None:
        raise ValueError(f"edit {instruction!r} does not apply: there is no {color} {shape}")
    if op == "remove":
        if len(scene.objects) == 1:
            raise ValueError(f"edit {instruction!r} does not apply: it would remove the only object")
        return scene.replace(target, None)
    if op == "recolor":
        new_color = match.group(3)
        if scene.find(new_color, shape) is not None:
            raise ValueError(f"edit {instruction!r} does not apply: there is already a {new_color} {shape}")
        return scene.replace(target, ShapeObject(shape, new_color, target.size, target.cell, target.jitter))
    cell = POSITIONS.index(match.group(3))  # move
    if cell in occupied:
        raise ValueError(f"edit {instruction!r} does not apply: the {POSITIONS[cell]} is occupied")
    return scene.replace(target, ShapeObject(shape, color, target.size, cell))


def edit_caption_question(instruction: str) -> str:
    """The question whose answer is the caption of `instruction`'s result: ``{instruction}. Describe the image.``

    An edit first states what it will draw (the `edit_caption` task, answered like any question)
    and then draws that description (`TunaPipeline.edit`), as BAGEL's "thinking" edits do: the
    model follows a caption far better (text-to-image) than it binds an instruction to one object
    of the source. Only words every instruction and question already use, so any tokenizer of the
    world reads it.
    """
    return f"{' '.join(instruction.split()).removesuffix('.')}. {DESCRIBE_IMAGE}"


def sample_edit(scene: Scene, rng: np.random.Generator) -> tuple[str, Scene]:
    """A random applicable edit (recolour / remove / add / move, uniform over those that apply) and its result."""
    free = [c for c in range(len(POSITIONS)) if c not in {o.cell for o in scene.objects}]
    unused = [(c, s) for c in COLORS for s in SHAPES if scene.find(c, s) is None]
    ops = ["recolor", "move"] + ["remove"] * (len(scene.objects) > 1) + ["add"] * (len(scene.objects) < MAX_OBJECTS)
    op = _pick(rng, ops)
    obj = _pick(rng, scene.objects)
    if op == "recolor":
        new_colors = [c for c in COLORS if scene.find(c, obj.shape) is None]
        text = RECOLOR.format(color=obj.color, shape=obj.shape, new_color=_pick(rng, new_colors))
    elif op == "remove":
        text = REMOVE.format(color=obj.color, shape=obj.shape)
    elif op == "add":
        color, shape = _pick(rng, unused)
        text = _position_phrase(
            ADD, ADD_CENTER, _pick(rng, free), rng, size=_pick(rng, list(SIZES)), color=color, shape=shape
        )
    else:
        text = MOVE.format(color=obj.color, shape=obj.shape, position=POSITIONS[_pick(rng, free)])
    return text, apply_edit(scene, text)


# -- questions --------------------------------------------------------------------------------
def answer_question(scene: Scene, question: str) -> str:
    """The exact answer to any spec question about `scene` (pure; the evaluator's oracle).

    `Where is ...` about a moving object answers its start cell. Raises ValueError for text that
    is not a spec question and for questions the spec never asks (shape / colour not unique).
    """
    text = _normalise(question)
    kind, match = next(((k, m) for k, pattern in _QUESTION_RES.items() if (m := pattern.fullmatch(text))), ("", None))
    if match is None:
        raise ValueError(f"{question!r} is not a Shapes World question; see the table in SHAPES_WORLD.md")
    if kind == "background":
        return scene.background
    if kind == "describe":
        return caption(scene)
    if kind == "count":
        if not 1 <= len(scene.objects) <= len(COUNT_WORDS):
            raise ValueError(f"cannot count {len(scene.objects)} objects in words; scenes have 1 to 3")
        return COUNT_WORDS[len(scene.objects) - 1]
    if kind in ("color_of_shape", "shape_of_color"):
        (value,) = match.groups()
        attribute = "shape" if kind == "color_of_shape" else "color"
        found = [o for o in scene.objects if getattr(o, attribute) == value]
        if len(found) > 1:
            raise ValueError(f"{question!r} is ambiguous: the scene has {len(found)} {value} objects")
        if not found:
            return NO_SHAPE.format(shape=value) if kind == "color_of_shape" else NO_COLOR.format(color=value)
        return found[0].color if kind == "color_of_shape" else found[0].shape
    color, shape = match.groups()
    obj = scene.find(color, shape)
    if kind == "is_there":
        return YES if obj is not None else NO
    if obj is None:
        return NO_OBJECT.format(color=color, shape=shape)
    if kind == "where":
        return obj.position
    return obj.direction or NOT_MOVING  # which_way


def _named(scene: Scene, rng: np.random.Generator, candidates: list[ShapeObject], present_p: float) -> dict[str, str]:
    """Colour and shape of a candidate object (with `present_p`) or of a pair absent from the scene."""
    if candidates and rng.random() < present_p:
        obj = _pick(rng, candidates)
        return {"color": obj.color, "shape": obj.shape}
    color, shape = _pick(rng, [(c, s) for c in COLORS for s in SHAPES if scene.find(c, s) is None])
    return {"color": color, "shape": shape}


def _unique_question(scene: Scene, rng: np.random.Generator, kind: str) -> str:
    """`What color is the {shape}?` / `What shape is the {color} object?` about a unique or absent value."""
    attribute, values = ("shape", SHAPES) if kind == "color_of_shape" else ("color", tuple(COLORS))
    counts = {v: sum(getattr(o, attribute) == v for o in scene.objects) for v in values}
    unique = [v for v, n in counts.items() if n == 1]
    absent = [v for v, n in counts.items() if n == 0]
    value = _pick(rng, unique) if unique and (not absent or rng.random() < PRESENT_P) else _pick(rng, absent)
    return COLOR_OF_SHAPE.format(shape=value) if kind == "color_of_shape" else SHAPE_OF_COLOR.format(color=value)


_FIXED_QUESTIONS = {
    "count": COUNT,
    "background": BACKGROUND,
    "describe": DESCRIBE_IMAGE,
    "describe_video": DESCRIBE_VIDEO,
}


def _question(scene: Scene, rng: np.random.Generator, kind: str) -> str:
    """A question of `kind` that the spec allows for `scene` (never an ambiguous one)."""
    if kind in ("color_of_shape", "shape_of_color"):
        return _unique_question(scene, rng, kind)
    if kind == "is_there":  # yes / no balanced 50:50
        return IS_THERE.format(**_named(scene, rng, list(scene.objects), 0.5))
    if kind == "where":  # a mover has no single place: ask only about still objects (or absent ones)
        return WHERE.format(**_named(scene, rng, [o for o in scene.objects if o.direction is None], PRESENT_P))
    if kind == "which_way":
        return WHICH_WAY.format(**_named(scene, rng, list(scene.objects), PRESENT_P))
    return _FIXED_QUESTIONS[kind]


_IMAGE_QUESTIONS = {
    "color_of_shape": 1.0,
    "shape_of_color": 1.0,
    "count": 1.0,
    "where": 1.0,
    "is_there": 1.0,
    "background": 1.0,
    "describe": 0.5,
}
_VIDEO_QUESTIONS = {
    "which_way": 3.0,
    "describe_video": 1.0,
    "color_of_shape": 0.5,
    "shape_of_color": 0.5,
    "count": 0.5,
    "where": 0.5,
    "is_there": 0.5,
    "background": 0.5,
}


def _sample_from(scene: Scene, rng: np.random.Generator, weights: dict[str, float]) -> tuple[str, str]:
    kinds = list(weights)
    p = np.asarray([weights[k] for k in kinds])
    question = _question(scene, rng, kinds[int(rng.choice(len(kinds), p=p / p.sum()))])
    return question, answer_question(scene, question)


def sample_question(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """A random unambiguous image question and its answer (all types of the spec table)."""
    return _sample_from(scene, rng, _IMAGE_QUESTIONS)


def sample_video_question(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """A random video question (mostly `Which way ...`) or an image question that still makes sense."""
    return _sample_from(scene, rng, _VIDEO_QUESTIONS)


def ask(task: str, scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """One question of an understanding task ("caption", "qa" or "video_qa") and its answer."""
    if task == "caption":
        return DESCRIBE_IMAGE, caption(scene)
    return (sample_video_question if task == "video_qa" else sample_question)(scene, rng)


def chat_turns(task: str, scene: Scene, rng: np.random.Generator, follow_ups: float) -> list[tuple[str, str]]:
    """The (question, answer) turns of one understanding sample; the last is `task`'s own.

    With probability `follow_ups` one or two earlier turns about the same scene come first (an
    image chat mixes descriptions and questions, a video chat asks video questions), since the
    app's Chat sends the whole conversation. At `follow_ups` 0 nothing extra is drawn from `rng`,
    so runs from before this option replay exactly.
    """
    turns = [ask(task, scene, rng)]
    if follow_ups and rng.random() < follow_ups:
        earlier = ("video_qa",) if task == "video_qa" else ("caption", "qa")
        turns[:0] = [ask(earlier[rng.integers(len(earlier))], scene, rng) for _ in range(rng.integers(1, 3))]
    return turns


# -- examples ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Example:
    """One training / evaluation example; pixel arrays are uint8, (H, W, 3) or (T, H, W, 3).

    `text` is the prompt (t2i / t2v), the question (caption / qa / video_qa / edit_caption) or the
    instruction (edit). `image` is the input image (caption, qa, edit and edit_caption source) or
    the target (t2i); `video` the input (video_qa) or the target (t2v).
    """

    task: str
    scene: Scene
    text: str
    answer: str | None = None
    image: np.ndarray | None = None
    video: np.ndarray | None = None
    target_image: np.ndarray | None = None  # edit only
    target_scene: Scene | None = None  # edit and edit_caption


def generation_prompt(scene: Scene, rng: np.random.Generator) -> str:
    """A t2i / t2v prompt: a paraphrase (PARAPHRASE_P) or the canonical caption with optional drops."""
    if rng.random() < PARAPHRASE_P:
        return paraphrase(scene, rng)
    return prompt_for(scene, rng, DROP_SIZE_P, DROP_BACKGROUND_P)


def make_example(task: str, rng: np.random.Generator, size: int = 64) -> Example:
    """Sample a scene for `task` and render what the trainer needs (see `Example`)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    video = task in VIDEO_TASKS
    scene = sample_scene(rng, video=video)
    if task in ("caption", "qa"):
        return Example(task, scene, *ask(task, scene, rng), image=render_image(scene, size))
    if task == "video_qa":
        return Example(task, scene, *ask(task, scene, rng), video=render_video(scene, size))
    if task == "t2i":
        return Example(task, scene, generation_prompt(scene, rng), image=render_image(scene, size))
    if task == "t2v":
        return Example(task, scene, generation_prompt(scene, rng), video=render_video(scene, size))
    instruction, target = sample_edit(scene, rng)
    if task == "edit_caption":
        question = edit_caption_question(instruction)
        return Example(task, scene, question, caption(target), image=render_image(scene, size), target_scene=target)
    return Example(
        task,
        scene,
        instruction,
        image=render_image(scene, size),
        target_image=render_image(target, size),
        target_scene=target,
    )


# -- vocabulary -------------------------------------------------------------------------------
def vocabulary() -> list[str]:
    """Every token any caption, paraphrase, prompt, question, answer or instruction can contain."""
    templates = [
        world.IMAGE_OBJECT,
        world.CENTER_OBJECT,
        world.VIDEO_OBJECT,
        world.BACKGROUND_PHRASE,
        *world.JOINERS,
        *world.PARAPHRASE_STILL,
        *world.PARAPHRASE_MOVING,
        *world.PARAPHRASE_SCENE,
        world.PARAPHRASE_IMAGE_SCENE,
        world.PARAPHRASE_VIDEO_SCENE,
        RECOLOR,
        REMOVE,
        ADD,
        ADD_CENTER,
        MOVE,
        COLOR_OF_SHAPE,
        SHAPE_OF_COLOR,
        COUNT,
        WHERE,
        IS_THERE,
        BACKGROUND,
        DESCRIBE_IMAGE,
        WHICH_WAY,
        DESCRIBE_VIDEO,
        NO_SHAPE,
        NO_COLOR,
        NO_OBJECT,
        NOT_MOVING,
        YES,
        NO,
        *COUNT_WORDS,
    ]
    slots = [*BACKGROUNDS, *COLORS, *SHAPES, *SIZES, *POSITIONS, *DIRECTIONS]
    words = {tok for text in templates + slots for tok in tokenize(re.sub(r"\{\w+\}", " ", text))}
    return sorted(words)
