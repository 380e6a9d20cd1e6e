"""Read a Shapes World scene back from pixels, for scoring generated images, videos and edits.

Every feature is chosen to survive anti-aliasing and the soft, slightly off-colour output of a
generator: colours snap to the nearest spec colour, and shape and size come from each object's
*coverage* map alpha (its pixels projected onto the line from background to object colour),
whose sums and moments a blur barely changes:

- shape: the third vertical cumulant of alpha (blur-invariant) is strongly negative only for an
  apex-up triangle, whose mass sits low; the fourth cumulants of x and y (unchanged by a
  Gaussian blur) separate a square's flat profile (-1/120 area^2) from a circle's
  (-1/(16 pi^2) area^2);
- size: the side follows from the area (blur-invariant) and the shape's fill (1, pi/4, 1/2),
  nearest of 0.16 N / 0.26 N on a log scale;
- cell: from the centroid (for a triangle, moved up side/6 to its box centre).

Detected objects carry no jitter; compare scenes with `caption` (or field by field).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tuna_core.data.world import BACKGROUNDS, COLORS, SIZES, Scene, ShapeObject

FOREGROUND_ALPHA = 0.5  # pixels at least half covered by some object colour are foreground
MIN_AREA = 0.0032  # blobs with less coverage (fraction of N^2; a quarter of a small triangle) are specks
MAX_SIDE = 0.31  # a blob wider or taller than this (fraction of N) is touching objects; split it by cell
# Every object lies inside its cell and spans at least 0.16 N each way, so a piece cut off along a
# grid line that is thinner than half of that is an oversized neighbour's overflow, not an object:
MIN_PIECE = 0.08
# Shape features are cumulants of alpha, which a symmetric blur leaves unchanged (third) or
# changes little (fourth; zero for a Gaussian blur):
TRIANGLE_SKEW = -0.003  # third vertical cumulant / side^3: apex-up triangle -1/135, circle and square 0
SQUARE_KURTOSIS = -0.0076  # mean fourth cumulant of x and y / area^2: square -1/120, circle -1/(16 pi^2)
NEAR_DISTANCE = 0.03  # soft edges are collected this far (fraction of N, at least 2 px) around a blob
ALPHA_FLOOR = 0.15  # coverage below this is treated as background noise
MOVE_DISTANCE = 0.15  # centroid displacement (fraction of N) that counts as a move (a move is 1/3)

_BACKGROUND_RGB = np.asarray(list(BACKGROUNDS.values()), np.float32)
_COLOR_RGB = np.asarray(list(COLORS.values()), np.float32)
_FILL = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}  # area / side^2
_SIZE_SPLIT = float(np.sqrt(np.prod(list(SIZES.values()))))  # geometric mean of small and large sides


@dataclass(frozen=True)
class _Blob:
    """One detected object with the measurements video matching needs."""

    obj: ShapeObject
    center: tuple[float, float]  # box centre (x, y) in pixels


def _nearest(rgb: np.ndarray, palette: np.ndarray) -> int:
    return int(np.argmin(np.linalg.norm(palette - rgb, axis=1)))


def _palette_alpha(pixels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per-pixel coverage by whichever spec colour explains the pixel best (nearest blend segment).

    Thresholding coverage at one half, rather than distance from the background, puts blob
    edges at the true object edges for every colour, blurred or not, so blurred neighbours
    leave no slivers in the wrong cell.
    """
    axes = _COLOR_RGB - background  # (6, 3) background -> colour
    offset = pixels - background  # (H, W, 3)
    # coverage along each background -> colour segment; clipped, since on gray complementary
    # colours lie on one line through the background (blue is "minus one yellow")
    t = np.clip(offset @ axes.T / np.einsum("ij,ij->i", axes, axes), 0.0, 1.0)  # (H, W, 6)
    residual = np.linalg.norm(offset[..., None, :] - t[..., None] * axes, axis=-1)  # (H, W, 6)
    return np.take_along_axis(t, residual.argmin(axis=-1)[..., None], axis=-1)[..., 0]


def _check_frame(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} array of shape {image.shape}")
    if image.shape[0] != image.shape[1]:
        raise ValueError(f"Shapes World images are square, got {image.shape[1]}x{image.shape[0]}; crop or resize first")


def _split_by_cell(labels: np.ndarray, count: int, n: int) -> tuple[np.ndarray, int]:
    """Cut blobs larger than any object along the grid lines (one object per cell, each inside its cell).

    The largest piece keeps the old label, and so do slivers: a piece narrower than MIN_PIECE is
    an oversized object spilling over a grid line, not an object of the next cell.
    """
    cell_of = (2 * np.arange(n) + 1) * 3 // (2 * n)  # by pixel centre
    cells = cell_of[:, None] * 3 + cell_of[None, :]  # cell index of every pixel
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        if max(np.ptp(xs), np.ptp(ys)) + 1 <= MAX_SIDE * n:
            continue
        pieces = [(labels == label) & (cells == cell) for cell in np.unique(cells[ys, xs])]
        largest = max(range(len(pieces)), key=lambda k: int(pieces[k].sum()))
        for k, piece in enumerate(pieces):
            py, px = np.nonzero(piece)
            if k != largest and min(np.ptp(px), np.ptp(py)) + 1 >= MIN_PIECE * n:
                labels[piece] = count
                count += 1
    return labels, count


def _coverage(
    pixels: np.ndarray, own: np.ndarray, others: np.ndarray, background: np.ndarray
) -> tuple[np.ndarray, str]:
    """The blob's coverage map alpha (H, W) and its spec colour name.

    alpha projects each pixel near the blob onto the line from background to the blob's median
    interior colour, so soft edges count fractionally and a colour a bit off still counts fully.
    """
    core = cv2.erode(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    color_rgb = np.median(pixels[core if core.sum() >= 4 else own], axis=0)
    axis = color_rgb - background
    reach = 2 * max(2, round(NEAR_DISTANCE * own.shape[0])) + 1
    near = cv2.dilate(own.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool) & ~others
    alpha = np.clip((pixels - background) @ axis / max(float(axis @ axis), 1.0), 0.0, 1.0) * near
    alpha[alpha < ALPHA_FLOOR] = 0.0  # background noise would otherwise add mass far from the centre
    return alpha, list(COLORS)[_nearest(color_rgb, _COLOR_RGB)]


def _classify(alpha: np.ndarray, color: str) -> _Blob | None:
    """Shape, size and cell of one coverage map from its moments; None for a speck."""
    n = alpha.shape[0]
    area = float(alpha.sum())
    if area < MIN_AREA * n * n:
        return None
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5  # pixel centres
    cx, cy = float((alpha * xs).sum()) / area, float((alpha * ys).sum()) / area
    dx, dy = xs - cx, ys - cy

    def moment(values: np.ndarray) -> float:
        return float((alpha * values).sum()) / area

    skew = moment(dy**3) / (2 * area) ** 1.5  # third cumulant / side^3 if a triangle (area = side^2 / 2)
    kurtosis = (moment(dx**4) - 3 * moment(dx**2) ** 2 + moment(dy**4) - 3 * moment(dy**2) ** 2) / (2 * area**2)
    shape = "triangle" if skew < TRIANGLE_SKEW else "square" if kurtosis < SQUARE_KURTOSIS else "circle"
    side = float(np.sqrt(area / _FILL[shape]))
    if shape == "triangle":
        cy -= side / 6  # the area centroid of an apex-up triangle sits side / 6 below its box centre
    size = "small" if side < _SIZE_SPLIT * n else "large"
    col, row = (min(max(int(v * 3 // n), 0), 2) for v in (cx, cy))
    return _Blob(ShapeObject(shape, color, size, row * 3 + col), (cx, cy))


def _detect(image: np.ndarray) -> tuple[str, list[_Blob]]:
    """Background name and the objects of one frame, in reading order."""
    _check_frame(image)
    n = image.shape[0]
    pixels = image.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)  # objects barely touch the border
    foreground = _palette_alpha(pixels, background) > FOREGROUND_ALPHA
    count, labels = cv2.connectedComponents(foreground.astype(np.uint8), connectivity=4)
    labels, count = _split_by_cell(labels, count, n)
    blobs = []
    for label in range(1, count):
        own = labels == label
        blob = _classify(*_coverage(pixels, own, (labels != 0) & ~own, background))
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


def _direction(dx: float, dy: float, n: int) -> str | None:
    """The move a centroid shift (dx, dy) in pixels shows along its main axis; None below MOVE_DISTANCE."""
    if max(abs(dx), abs(dy)) < MOVE_DISTANCE * n:
        return None
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "up" if dy < 0 else "down"  # image y grows downwards


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
        o = blob.obj
        objects.append(ShapeObject(o.shape, o.color, o.size, o.cell, direction=_direction(dx, dy, n)))
    objects += [b.obj for b in last]
    return Scene(background, tuple(objects))
