"""Shapes World: scenes, rendering and captions exactly as `SHAPES_WORLD.md` fixes them.

Geometry is in units of the canvas side N (continuous coordinates, the image spans [0, N] and
pixel i covers [i, i + 1)), so one scene renders at any resolution. Rendering supersamples each
object 4× per axis and averages, which anti-aliases edges while flat interiors keep the exact
spec colour — the detector and the tests rely on both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
    "white": (235, 235, 235),
}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "yellow": (230, 230, 25),
    "green": (25, 200, 25),
    "cyan": (25, 220, 220),
    "blue": (30, 30, 230),
    "magenta": (220, 25, 220),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: dict[str, float] = {"small": 0.16, "large": 0.26}  # bounding-box side / N
POSITIONS: tuple[str, ...] = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)  # index = row * 3 + col
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
CENTER = POSITIONS.index("center")
MAX_JITTER = 0.03  # per axis, fraction of N
MIN_OBJECTS, MAX_OBJECTS = 1, 3
VIDEO_FPS = 8
VIDEO_FRAMES = 17  # 4k + 1, to suit a causally compressed video latent
SUPERSAMPLE = 4

_STEP: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (drow, dcol)

# Templates. `vocabulary()` (tasks.py) tokenises these, so every phrase this module can emit
# is built from them and from the constants above.
IMAGE_OBJECT = "a {size} {color} {shape} at the {position}"
CENTER_OBJECT = "a {size} {color} {shape} in the center"
VIDEO_OBJECT = "a {size} {color} {shape} moving {direction} from the {position}"
BACKGROUND_PHRASE = " on a {background} background"
JOINERS = (", ", " and ")  # `X, Y and Z`
PARAPHRASE_STILL = ("a {size} {color} {shape} at the {position}", "a {size} {color} {shape} placed at the {position}")
PARAPHRASE_MOVING = (
    "a {size} {color} {shape} moving {direction} from the {position}",
    "a {size} {color} {shape} that moves {direction} from the {position}",
    "a {size} {color} {shape} going {direction} from the {position}",
)
PARAPHRASE_SCENE = (
    "{objects} on a {background} background",
    "a {background} background with {objects}",
    "{objects}. the background is {background}.",
)
PARAPHRASE_IMAGE_SCENE = "an image of {objects} on a {background} background"
PARAPHRASE_VIDEO_SCENE = "a video of {objects} on a {background} background"


@dataclass(frozen=True)
class ShapeObject:
    """One object. `cell` is the (start) cell index; `jitter` is the box-centre offset (dx, dy) / N.

    `direction` None means the object stays put; otherwise it moves one cell over the clip.
    Only vocabulary and range are checked here; relations (grid bounds, collisions, unique
    names) are scene rules, checked by `validate_scene`, so a detector can still describe a
    flawed generated image.
    """

    shape: str
    color: str
    size: str
    cell: int
    jitter: tuple[float, float] = (0.0, 0.0)
    direction: str | None = None

    def __post_init__(self) -> None:
        _check_choice("shape", self.shape, SHAPES)
        _check_choice("color", self.color, tuple(COLORS))
        _check_choice("size", self.size, tuple(SIZES))
        if self.direction is not None:
            _check_choice("direction", self.direction, DIRECTIONS)
        if not 0 <= self.cell < len(POSITIONS):
            raise ValueError(f"cell {self.cell!r} is outside the 3x3 grid; use 0..8 (row * 3 + col)")
        if any(abs(j) > MAX_JITTER + 1e-9 for j in self.jitter):
            raise ValueError(f"jitter {self.jitter!r} exceeds {MAX_JITTER} N per axis; clip it to ±{MAX_JITTER}")

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    @property
    def end_cell(self) -> int | None:
        """The cell the object ends in (its own cell when still); None if the move leaves the grid."""
        return self.cell if self.direction is None else neighbour_cell(self.cell, self.direction)


@dataclass(frozen=True)
class Scene:
    """A background and its objects (in any order; captions sort them by cell)."""

    background: str
    objects: tuple[ShapeObject, ...]

    def __post_init__(self) -> None:
        _check_choice("background", self.background, tuple(BACKGROUNDS))

    @property
    def is_video(self) -> bool:
        """True when any object moves; a clip in which nothing moves reads exactly like an image."""
        return any(o.direction is not None for o in self.objects)

    def find(self, color: str, shape: str) -> ShapeObject | None:
        """The object named "the {color} {shape}" (unique in a valid scene), or None."""
        return next((o for o in self.objects if o.color == color and o.shape == shape), None)

    def replace(self, old: ShapeObject | None, new: ShapeObject | None) -> Scene:
        """A copy with `old` swapped for `new` (None removes / adds), keeping the other objects."""
        kept = tuple(o for o in self.objects if o is not old)
        return Scene(self.background, kept + ((new,) if new is not None else ()))


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not in Shapes World; use one of {', '.join(allowed)}")


def neighbour_cell(cell: int, direction: str) -> int | None:
    """The cell one step `direction` from `cell`, or None when that step leaves the grid."""
    drow, dcol = _STEP[direction]
    row, col = divmod(cell, 3)
    row, col = row + drow, col + dcol
    return row * 3 + col if 0 <= row < 3 and 0 <= col < 3 else None


def validate_scene(scene: Scene) -> None:
    """Raise ValueError naming the first broken scene rule of the spec (counts, cells, names, moves)."""
    objects = scene.objects
    if not MIN_OBJECTS <= len(objects) <= MAX_OBJECTS:
        raise ValueError(f"scene has {len(objects)} objects; Shapes World scenes have {MIN_OBJECTS} to {MAX_OBJECTS}")
    names = [(o.color, o.shape) for o in objects]
    if len(set(names)) != len(names):
        raise ValueError(f"scene names an object twice ({names}); each (color, shape) pair may occur once")
    cells: list[int] = []
    for o in objects:
        end = o.end_cell
        if end is None:
            raise ValueError(
                f"the {o.color} {o.shape} cannot move {o.direction} from the {o.position}: it leaves the grid"
            )
        if o.direction is not None and o.jitter != (0.0, 0.0):
            raise ValueError(f"the moving {o.color} {o.shape} has jitter {o.jitter}; moving objects have none")
        cells += [o.cell] if end == o.cell else [o.cell, end]
    if len(set(cells)) != len(cells):
        raise ValueError(f"scene cells {cells} collide; start and end cells of all objects must be pairwise distinct")


# -- sampling ---------------------------------------------------------------------------------
def _sample_jitter(rng: np.random.Generator) -> tuple[float, float]:
    dx, dy = rng.uniform(-MAX_JITTER, MAX_JITTER, size=2)
    return (float(dx), float(dy))


def sample_scene(
    rng: np.random.Generator,
    *,
    min_objects: int = MIN_OBJECTS,
    max_objects: int = MAX_OBJECTS,
    video: bool = False,
    move_p: float = 0.6,
) -> Scene:
    """A random valid scene (uniform count, names, sizes, cells); in a `video` each object moves with
    `move_p`, and at least one moves.

    Moves are drawn uniformly over the (start cell, direction) pairs whose two cells are still
    free, so all four directions are equally common.
    """
    if not MIN_OBJECTS <= min_objects <= max_objects <= MAX_OBJECTS:
        raise ValueError(
            f"object range {min_objects}..{max_objects} is invalid; pick {MIN_OBJECTS} <= min <= max <= {MAX_OBJECTS}"
        )
    count = int(rng.integers(min_objects, max_objects + 1))
    background = str(rng.choice(list(BACKGROUNDS)))
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    names = [pairs[i] for i in rng.choice(len(pairs), size=count, replace=False)]
    sizes = [str(s) for s in rng.choice(list(SIZES), size=count)]
    if not video:
        cells = rng.choice(len(POSITIONS), size=count, replace=False)
        objects = tuple(
            ShapeObject(shape, color, size, int(cell), _sample_jitter(rng))
            for (color, shape), size, cell in zip(names, sizes, cells, strict=True)
        )
        return Scene(background, objects)

    moving = rng.random(count) < move_p
    moving[int(rng.integers(count))] = True  # a clip always shows motion
    used: set[int] = set()
    video_objects: list[ShapeObject] = []
    for (color, shape), size, moves in zip(names, sizes, moving, strict=True):
        move_options = [
            (cell, d, end)
            for cell in range(len(POSITIONS))
            for d in DIRECTIONS
            if cell not in used and (end := neighbour_cell(cell, d)) is not None and end not in used
        ]
        if moves and move_options:  # with at most 3 objects there is always room, but never assume
            cell, direction, end = move_options[int(rng.integers(len(move_options)))]
            video_objects.append(ShapeObject(shape, color, size, cell, direction=direction))
            used |= {cell, end}
        else:
            free = [c for c in range(len(POSITIONS)) if c not in used]
            cell = free[int(rng.integers(len(free)))]
            video_objects.append(ShapeObject(shape, color, size, cell, _sample_jitter(rng)))
            used.add(cell)
    return Scene(background, tuple(video_objects))


# -- rendering --------------------------------------------------------------------------------
def cell_center(cell: int, n: float) -> tuple[float, float]:
    """Centre (x, y) of `cell` on a canvas of side `n`: ((c + 0.5) n / 3, (r + 0.5) n / 3)."""
    row, col = divmod(cell, 3)
    return ((col + 0.5) * n / 3, (row + 0.5) * n / 3)


def object_box(obj: ShapeObject, n: int, progress: float = 0.0) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the object's box at clip `progress` in [0, 1] (0 = start cell)."""
    x, y = cell_center(obj.cell, n)
    if obj.direction is not None and progress > 0.0:
        end = obj.end_cell
        if end is None:
            raise ValueError(f"the {obj.color} {obj.shape} cannot move {obj.direction} from the {obj.position}")
        ex, ey = cell_center(end, n)
        x, y = x + (ex - x) * progress, y + (ey - y) * progress
    return (x + obj.jitter[0] * n, y + obj.jitter[1] * n, SIZES[obj.size] * n)


def _coverage(shape: str, cx: float, cy: float, side: float, n: int) -> tuple[int, int, np.ndarray]:
    """Anti-aliased coverage of one filled shape: (row0, col0, alpha[h, w]) of its pixel window."""
    half = side / 2
    x0, x1 = max(int(np.floor(cx - half)), 0), min(int(np.ceil(cx + half)), n)
    y0, y1 = max(int(np.floor(cy - half)), 0), min(int(np.ceil(cy + half)), n)
    u = (np.arange(x0 * SUPERSAMPLE, x1 * SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE - cx
    v = ((np.arange(y0 * SUPERSAMPLE, y1 * SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE - cy)[:, None]
    if shape == "square":
        inside = (np.abs(u) <= half) & (np.abs(v) <= half)
    elif shape == "circle":
        inside = u * u + v * v <= half * half
    else:  # triangle: apex at the top centre of the box, base along its bottom edge
        inside = (v <= half) & (np.abs(u) <= (v + half) / 2)
    h, w = y1 - y0, x1 - x0
    alpha = inside.reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).mean(axis=(1, 3), dtype=np.float32)
    return y0, x0, alpha


def _paint(canvas: np.ndarray, obj: ShapeObject, progress: float) -> None:
    """Blend one object into a float canvas in place."""
    n = canvas.shape[0]
    cx, cy, side = object_box(obj, n, progress)
    y0, x0, alpha = _coverage(obj.shape, cx, cy, side, n)
    region = canvas[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]]
    region += alpha[..., None] * (np.asarray(COLORS[obj.color], np.float32) - region)


def _blank(background: str, size: int) -> np.ndarray:
    if size < 8:
        raise ValueError(f"canvas size {size} is too small to draw Shapes World; use at least 8 (default 64)")
    return np.broadcast_to(np.asarray(BACKGROUNDS[background], np.float32), (size, size, 3)).copy()


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def render_image(scene: Scene, size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8 image; moving objects are drawn at their start cells (= video frame 0)."""
    canvas = _blank(scene.background, size)
    for obj in scene.objects:
        _paint(canvas, obj, 0.0)
    return _to_uint8(canvas)


def render_video(scene: Scene, size: int = 64, frames: int = VIDEO_FRAMES) -> np.ndarray:
    """(frames, size, size, 3) uint8 clip: movers go at constant speed, cell centre to cell centre."""
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}; the spec uses {VIDEO_FRAMES}")
    still = _blank(scene.background, size)
    movers = [o for o in scene.objects if o.direction is not None]
    for obj in scene.objects:
        if obj.direction is None:
            _paint(still, obj, 0.0)
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        canvas = still.copy()
        for obj in movers:
            _paint(canvas, obj, t / (frames - 1))
        video[t] = _to_uint8(canvas)
    return video


# -- captions ---------------------------------------------------------------------------------
def join_phrases(phrases: list[str]) -> str:
    """`X`, `X and Y`, `X, Y and Z`."""
    if not phrases:
        raise ValueError("cannot join zero object phrases; a scene has at least one object")
    comma, last = JOINERS
    return phrases[0] if len(phrases) == 1 else comma.join(phrases[:-1]) + last + phrases[-1]


def object_phrase(obj: ShapeObject, *, with_size: bool = True) -> str:
    """The canonical phrase of one object (image phrase when still, video phrase when moving)."""
    size = obj.size if with_size else ""
    if obj.direction is not None:
        text = VIDEO_OBJECT.format(
            size=size, color=obj.color, shape=obj.shape, direction=obj.direction, position=obj.position
        )
    elif obj.cell == CENTER:
        text = CENTER_OBJECT.format(size=size, color=obj.color, shape=obj.shape)
    else:
        text = IMAGE_OBJECT.format(size=size, color=obj.color, shape=obj.shape, position=obj.position)
    return " ".join(text.split())  # an omitted size leaves a double space


def _reading_order(scene: Scene) -> list[ShapeObject]:
    return sorted(scene.objects, key=lambda o: (o.cell, o.color, o.shape))


def caption(scene: Scene) -> str:
    """The canonical caption (image or video form), objects in reading order of their start cells."""
    body = join_phrases([object_phrase(o) for o in _reading_order(scene)])
    return body + BACKGROUND_PHRASE.format(background=scene.background)


def prompt_for(scene: Scene, rng: np.random.Generator, drop_size_p: float, drop_background_p: float) -> str:
    """A canonical generation prompt, leaving out each object's size with `drop_size_p` and the
    background phrase with `drop_background_p` (the spec lets the generator choose those)."""
    objects = _reading_order(scene)
    keep_size = rng.random(len(objects)) >= drop_size_p
    body = join_phrases([object_phrase(o, with_size=bool(k)) for o, k in zip(objects, keep_size, strict=True)])
    if rng.random() < drop_background_p:
        return body
    return body + BACKGROUND_PHRASE.format(background=scene.background)


def paraphrase(scene: Scene, rng: np.random.Generator) -> str:
    """A non-canonical but unambiguous description: shuffled object order and varied wording.

    Every phrase still names size, colour, shape and cell (and direction), so it describes the
    scene exactly; the word set stays small (see `vocabulary`).
    """
    phrases = []
    for i in rng.permutation(len(scene.objects)):
        obj = scene.objects[int(i)]
        templates = PARAPHRASE_MOVING if obj.direction is not None else PARAPHRASE_STILL
        template = templates[int(rng.integers(len(templates)))]
        phrases.append(
            template.format(
                size=obj.size, color=obj.color, shape=obj.shape, direction=obj.direction, position=obj.position
            )
        )
    scenes = (*PARAPHRASE_SCENE, PARAPHRASE_VIDEO_SCENE if scene.is_video else PARAPHRASE_IMAGE_SCENE)
    return scenes[int(rng.integers(len(scenes)))].format(objects=join_phrases(phrases), background=scene.background)


# -- parsing ----------------------------------------------------------------------------------
def _alternation(words: object) -> str:
    return "|".join(sorted((re.escape(str(w)) for w in words), key=len, reverse=True))


_POSITION_RE = _alternation(POSITIONS)
_OBJECT_RE = re.compile(
    rf"a (?:(?P<size>{_alternation(SIZES)}) )?(?P<color>{_alternation(COLORS)}) (?P<shape>{_alternation(SHAPES)}) "
    rf"(?:moving (?P<direction>{_alternation(DIRECTIONS)}) from the (?P<start>{_POSITION_RE})"
    rf"|(?:at|in) the (?P<position>{_POSITION_RE}))"
)
_BACKGROUND_RE = re.compile(rf" on a (?P<background>{_alternation(BACKGROUNDS)}) background$")
_JOIN_RE = re.compile(r", | and ")


@dataclass(frozen=True)
class PromptObject:
    """An object a prompt names; `size` None means the prompt left the size to the generator."""

    shape: str
    color: str
    cell: int
    size: str | None = None
    direction: str | None = None

    def admits(self, obj: ShapeObject) -> bool:
        """True when `obj` is this object: shape, colour, cell and motion, and size where named."""
        same = (obj.shape, obj.color, obj.cell, obj.direction) == (self.shape, self.color, self.cell, self.direction)
        return same and self.size in (None, obj.size)


@dataclass(frozen=True)
class PromptSpec:
    """What a generation prompt asks for; `background` None means any background will do."""

    objects: tuple[PromptObject, ...]
    background: str | None = None

    def matches(self, scene: Scene) -> bool:
        """True when `scene` shows exactly the named objects (sizes / background only where named)."""
        if len(scene.objects) != len(self.objects):
            return False
        if self.background is not None and scene.background != self.background:
            return False
        remaining = list(scene.objects)
        for want in self.objects:
            hit = next((o for o in remaining if want.admits(o)), None)
            if hit is None:
                return False
            remaining.remove(hit)
        return True

    def object_hits(self, scene: Scene) -> tuple[int, int]:
        """(placed, exact): how many named objects `scene` shows in their colour at their cell (any
        shape), and how many it shows exactly. Partial credit that moves while a young model's
        strict `matches` is still always False; extra objects and the background are not counted."""
        placed = sum(any((o.color, o.cell) == (w.color, w.cell) for o in scene.objects) for w in self.objects)
        exact = sum(any(w.admits(o) for o in scene.objects) for w in self.objects)
        return placed, exact


def parse_prompt(text: str) -> PromptSpec:
    """Parse a canonical image or video caption (sizes and background phrase optional).

    Accepts `at the center` as well as `in the center`, any letter case and a final period.
    Raises ValueError naming the text if it is not a canonical caption of a valid scene.
    """
    body = " ".join(text.lower().split()).removesuffix(".").rstrip()
    background = None
    if match := _BACKGROUND_RE.search(body):
        background = match["background"]
        body = body[: match.start()]
    objects = []
    for phrase in _JOIN_RE.split(body):
        match = _OBJECT_RE.fullmatch(phrase)
        if match is None:
            raise ValueError(
                f"cannot parse {text!r}: {phrase!r} is not an object phrase like 'a small red circle at the top left'"
            )
        cell = POSITIONS.index(match["start"] or match["position"])
        objects.append(PromptObject(match["shape"], match["color"], cell, match["size"], match["direction"]))
    spec = PromptSpec(tuple(objects), background)
    try:  # check the scene rules on a stand-in scene (size / background don't affect them)
        validate_scene(
            Scene(
                background or "black",
                tuple(ShapeObject(o.shape, o.color, "small", o.cell, direction=o.direction) for o in objects),
            )
        )
    except ValueError as err:
        raise ValueError(f"prompt {text!r} does not describe a valid scene: {err}") from err
    return spec


def tokenize(text: str) -> list[str]:
    """Lower-case words split on whitespace, with `,` `?` `.` as separate tokens."""
    return re.sub(r"([,?.])", r" \1 ", text.lower()).split()
