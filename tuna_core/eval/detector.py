"""Read a Shapes World scene back from pixels, for scoring generated images, videos and edits.

Every feature is chosen to survive anti-aliasing and the soft, slightly off-colour output of a
generator: colours snap to the nearest spec colour, and shape and size come from each object's
*coverage* map alpha (its pixels projected onto the line from background to object colour),
whose sums and moments a blur barely changes:

- size: the object's width and height, measured as the sum over columns (rows) of the largest
  alpha in that column (row) — exact for a blurred edge — compared with 0.16 N / 0.26 N;
- shape: a triangle (apex up) is the only shape whose mass is skewed towards its bottom
  (vertical skewness -0.57 vs 0); otherwise area / (width · height) is 1 for a square and
  pi / 4 for a circle.

Detected objects carry no jitter; compare scenes with `caption` (or field by field).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tuna_core.data.world import BACKGROUNDS, COLORS, SIZES, Scene, ShapeObject

FOREGROUND_DISTANCE = 60.0  # RGB distance from the background that counts as object (spec colours are >= 162 away)
MIN_AREA = 0.0032  # blobs with less coverage (fraction of N^2; a quarter of a small triangle) are specks
MAX_SIDE = 0.31  # a blob wider or taller than this (fraction of N) is touching objects; split it by cell
TRIANGLE_SKEW = -0.3  # vertical skewness below this means apex-up triangle (ideal -0.57; circle, square 0)
SQUARE_FILL = 0.9  # area / (width * height) above this means square (ideal 1.0; circle pi / 4)
MOVE_DISTANCE = 0.15  # centroid displacement (fraction of N) that counts as a move (a move is 1/3)

_BACKGROUND_RGB = np.asarray(list(BACKGROUNDS.values()), np.float32)
_COLOR_RGB = np.asarray(list(COLORS.values()), np.float32)
_SIZE_SPLIT = float(np.sqrt(np.prod(list(SIZES.values()))))  # geometric mean of small and large sides


@dataclass(frozen=True)
class _Blob:
    """One detected object with the measurements video matching needs."""

    obj: ShapeObject
    center: tuple[float, float]  # box centre (x, y) in pixels


def _nearest(rgb: np.ndarray, palette: np.ndarray) -> int:
    return int(np.argmin(np.linalg.norm(palette - rgb, axis=1)))


def _check_frame(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} array of shape {image.shape}")
    if image.shape[0] != image.shape[1]:
        raise ValueError(f"Shapes World images are square, got {image.shape[1]}x{image.shape[0]}; crop or resize first")


def _split_by_cell(labels: np.ndarray, count: int, n: int) -> tuple[np.ndarray, int]:
    """Cut blobs larger than any object along the grid lines (one object per cell, each inside its cell)."""
    cell_of = (2 * np.arange(n) + 1) * 3 // (2 * n)  # by pixel centre
    cells = cell_of[:, None] * 3 + cell_of[None, :]  # cell index of every pixel
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        if max(np.ptp(xs), np.ptp(ys)) + 1 <= MAX_SIDE * n:
            continue
        for cell in np.unique(cells[ys, xs])[1:]:  # the first piece keeps the old label
            piece = (labels == label) & (cells == cell)
            labels[piece] = count
            count += 1
    return labels, count


def _measure(image: np.ndarray, own: np.ndarray, others: np.ndarray, background: np.ndarray) -> _Blob | None:
    """Classify one blob (`own` mask), ignoring pixels of `others`; None for a speck."""
    n = image.shape[0]
    core = cv2.erode(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    color_rgb = np.median(image[core if core.sum() >= 4 else own], axis=0)
    axis = color_rgb - background
    if float(axis @ axis) < 1.0:
        return None
    near = cv2.dilate(own.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~others
    alpha = np.clip((image - background) @ axis / float(axis @ axis), 0.0, 1.0) * near
    area = float(alpha.sum())
    if area < MIN_AREA * n * n:
        return None
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5  # pixel centres
    cx, cy = float((alpha * xs).sum() / area), float((alpha * ys).sum() / area)
    var_y = float((alpha * (ys - cy) ** 2).sum() / area)
    skew = float((alpha * (ys - cy) ** 3).sum() / area) / max(var_y, 1e-6) ** 1.5
    width, height = float(alpha.max(axis=0).sum()), float(alpha.max(axis=1).sum())
    side = (width + height) / 2
    if skew < TRIANGLE_SKEW:
        shape = "triangle"
        cy -= side / 6  # the area centroid of an apex-up triangle sits side/6 below its box centre
    else:
        shape = "square" if area / (width * height) > SQUARE_FILL else "circle"
    size = "small" if side < _SIZE_SPLIT * n else "large"
    col, row = (min(max(int(v * 3 // n), 0), 2) for v in (cx, cy))
    color = list(COLORS)[_nearest(color_rgb, _COLOR_RGB)]
    return _Blob(ShapeObject(shape, color, size, row * 3 + col), (cx, cy))


def _detect(image: np.ndarray) -> tuple[str, list[_Blob]]:
    """Background name and the objects of one frame, in reading order."""
    _check_frame(image)
    n = image.shape[0]
    pixels = image.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)  # objects barely touch the border
    foreground = np.linalg.norm(pixels - background, axis=2) > FOREGROUND_DISTANCE
    count, labels = cv2.connectedComponents(foreground.astype(np.uint8), connectivity=4)
    labels, count = _split_by_cell(labels, count, n)
    blobs = []
    for label in range(1, count):
        own = labels == label
        blob = _measure(pixels, own, (labels != 0) & ~own, background)
        if blob is not None:
            blobs.append(blob)
    blobs.sort(key=lambda b: (b.obj.cell, b.obj.color, b.obj.shape))
    return list(BACKGROUNDS)[_nearest(background, _BACKGROUND_RGB)], blobs


def detect_scene(image: np.ndarray) -> Scene:
    """The scene an (N, N, 3) uint8 image shows, at any N.

    The result may break scene rules (no object, four objects, two in one cell) when the image
    does; `validate_scene` says which.
    """
    background, blobs = _detect(image)
    return Scene(background, tuple(b.obj for b in blobs))


def detect_video(frames: np.ndarray) -> Scene:
    """The scene a (T, N, N, 3) uint8 clip shows, with each object's direction of motion.

    Objects of the first and last frames are matched by (colour, shape), nearest first; a
    centroid shift of at least MOVE_DISTANCE · N along its main axis is a move. Objects seen in
    only one of the two frames are reported as still, so an evaluator sees the mismatch.
    """
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ValueError(f"expected a (T, H, W, 3) clip with T >= 2, got shape {frames.shape}")
    n = frames.shape[1]
    background, first = _detect(frames[0])
    _, last = _detect(frames[-1])
    objects = []
    for blob in first:
        same = [b for b in last if (b.obj.color, b.obj.shape) == (blob.obj.color, blob.obj.shape)]
        if not same:
            objects.append(blob.obj)
            continue
        match = min(same, key=lambda b: np.hypot(b.center[0] - blob.center[0], b.center[1] - blob.center[1]))
        last.remove(match)
        dx, dy = match.center[0] - blob.center[0], match.center[1] - blob.center[1]
        direction = None
        if max(abs(dx), abs(dy)) >= MOVE_DISTANCE * n:
            if abs(dx) >= abs(dy):
                direction = "left" if dx < 0 else "right"
            else:
                direction = "up" if dy < 0 else "down"  # image y grows downwards
        o = blob.obj
        objects.append(ShapeObject(o.shape, o.color, o.size, o.cell, direction=direction))
    objects += [b.obj for b in last]
    return Scene(background, tuple(objects))
