"""The pixel detector reads back exactly the scene that was rendered, also when blurred and noisy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tuna_core.data.tasks import make_example
from tuna_core.data.world import (
    BACKGROUNDS,
    COLORS,
    Scene,
    ShapeObject,
    caption,
    render_image,
    render_video,
    sample_scene,
)
from tuna_core.eval.detector import detect_scene, detect_video

TL, TOP, TR, LEFT, CENTER, RIGHT, BL, BOTTOM, BR = range(9)


def key(scene: Scene) -> tuple[str, list[tuple[int, str, str, str, str | None]]]:
    """Everything the spec scores: background and each object's cell, shape, colour, size, direction."""
    return scene.background, sorted((o.cell, o.shape, o.color, o.size, o.direction) for o in scene.objects)


def degrade(pixels: np.ndarray, rng: np.random.Generator, sigma: float = 0.7, noise: float = 6.0) -> np.ndarray:
    """Mild Gaussian blur (sigma in pixels at N=64) plus Gaussian noise: a soft generated image."""
    n = pixels.shape[-2]
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), sigma * n / 64) for f in pixels.reshape(-1, n, n, 3)])
    noisy = blurred.astype(np.float32) + rng.normal(0, noise, blurred.shape)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8).reshape(pixels.shape)


def test_reads_the_spec_example_exactly() -> None:
    scene = Scene(
        "black",
        (
            ShapeObject("circle", "red", "large", TL, (0.02, -0.03)),
            ShapeObject("square", "blue", "small", CENTER, (-0.03, 0.03)),
            ShapeObject("triangle", "yellow", "small", BR, (0.03, 0.03)),
        ),
    )
    detected = detect_scene(render_image(scene, 64))
    assert caption(detected) == (
        "a large red circle at the top left, a small blue square in the center and a small "
        "yellow triangle at the bottom right on a black background"
    )
    assert all(o.jitter == (0.0, 0.0) for o in detected.objects)  # detections carry no jitter


def test_separates_touching_neighbours_of_one_colour() -> None:
    # two large squares jittered towards each other leave under a pixel between them
    scene = Scene(
        "white",
        (
            ShapeObject("square", "green", "large", LEFT, (0.03, 0.0)),
            ShapeObject("circle", "green", "large", CENTER, (-0.03, 0.0)),
            ShapeObject("triangle", "green", "large", RIGHT, (-0.03, 0.0)),
        ),
    )
    for n in (64, 65, 96):
        assert key(detect_scene(render_image(scene, n))) == key(scene)


def test_reads_an_oversized_object_spilling_over_a_grid_line_as_one_object() -> None:
    # a generator's square a little too large and too low: 20 px tall from y = 3, so rows 21-22
    # (the next cell) hold a two-pixel sliver of it, which is no object of that cell
    image = np.full((64, 64, 3), BACKGROUNDS["gray"], np.uint8)
    image[3:23, 43:62] = COLORS["yellow"]
    image[46:62, 24:40] = COLORS["blue"]
    assert key(detect_scene(image)) == (
        "gray",
        [(TR, "square", "yellow", "large", None), (BOTTOM, "square", "blue", "large", None)],
    )
    # the same square pushed a third of the way into the next cell is two objects' worth of square
    image[23:30, 43:62] = COLORS["yellow"]
    assert [o.cell for o in detect_scene(image).objects] == [TR, RIGHT, BOTTOM]


def test_ignores_specks_and_reads_an_empty_canvas_as_no_objects() -> None:
    image = render_image(Scene("gray", (ShapeObject("circle", "cyan", "small", TOP),)), 64)
    image[50, 50] = (230, 25, 25)
    image[10:12, 60:62] = (30, 30, 230)
    assert key(detect_scene(image)) == ("gray", [(TOP, "circle", "cyan", "small", None)])
    blank = np.full((64, 64, 3), 235, np.uint8)
    assert detect_scene(blank) == Scene("white", ())


@pytest.mark.parametrize("n", [64, 128])
def test_recovers_random_clean_scenes_exactly(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(300 if n == 64 else 100):
        scene = sample_scene(rng)
        assert key(detect_scene(render_image(scene, n))) == key(scene), caption(scene)


def test_recovers_blurred_noisy_scenes() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(300):
        scene = sample_scene(rng)
        hits += key(detect_scene(degrade(render_image(scene, 64), rng))) == key(scene)
    assert hits / 300 >= 0.98


def test_reads_off_colour_objects_as_the_nearest_spec_colour() -> None:
    scene = Scene("gray", (ShapeObject("triangle", "magenta", "large", BOTTOM),))
    image = render_image(scene, 64).astype(np.int16)
    inside = np.abs(image - (128, 128, 128)).sum(axis=2) > 0
    image[inside] += np.array([-25, 20, -15], np.int16)  # a generator's colour drift
    assert key(detect_scene(np.clip(image, 0, 255).astype(np.uint8))) == key(scene)


def test_reads_a_hand_built_video_with_directions() -> None:
    scene = Scene(
        "white",
        (
            ShapeObject("circle", "red", "small", TR, direction="left"),
            ShapeObject("square", "blue", "large", BOTTOM, (0.01, -0.02)),
            ShapeObject("triangle", "green", "large", LEFT, direction="up"),
        ),
    )
    detected = detect_video(render_video(scene, 64))
    assert caption(detected) == caption(scene)


def test_recovers_random_videos() -> None:
    rng = np.random.default_rng(2)
    clean = noisy = 0
    for _ in range(100):
        scene = sample_scene(rng, video=True)
        video = render_video(scene, 64)
        clean += key(detect_video(video)) == key(scene)
        noisy += key(detect_video(degrade(video, rng))) == key(scene)
    assert clean == 100
    assert noisy >= 98


def test_edit_targets_read_back_as_the_expected_scene() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        example = make_example("edit", rng)
        assert example.target_scene is not None and example.target_image is not None
        assert key(detect_scene(example.target_image)) == key(example.target_scene)


def test_rejects_pixels_that_are_not_a_square_uint8_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        detect_scene(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="square"):
        detect_scene(np.zeros((64, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="T >= 2"):
        detect_video(np.zeros((1, 64, 64, 3), np.uint8))
