"""Render the app's example inputs from Shapes World scenes: `python assets/examples/make_examples.py`.

The files are committed; this script says exactly what they show (the caption is in each file's
metadata too) and rebuilds them if the renderer changes.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tuna_core.data.world import VIDEO_FPS, Scene, ShapeObject, caption, render_image, render_video, validate_scene
from tuna_core.media import save_mp4, save_png

HERE = Path(__file__).resolve().parent

IMAGES: dict[str, Scene] = {
    "red_circle_blue_square.png": Scene(
        "black", (ShapeObject("circle", "red", "large", 0), ShapeObject("square", "blue", "small", 4))
    ),
    "three_shapes.png": Scene(
        "gray",
        (
            ShapeObject("triangle", "green", "small", 2),
            ShapeObject("square", "yellow", "large", 6),
            ShapeObject("circle", "magenta", "small", 8),
        ),
    ),
}
VIDEOS: dict[str, Scene] = {
    "red_circle_moving_right.mp4": Scene(
        "black",
        (ShapeObject("circle", "red", "large", 3, direction="right"), ShapeObject("square", "blue", "small", 1)),
    ),
}


def main() -> None:
    for name, scene in IMAGES.items():
        validate_scene(scene)
        save_png(Image.fromarray(render_image(scene)), HERE / name, {"caption": caption(scene)})
        print(f"{name}: {caption(scene)}")
    for name, scene in VIDEOS.items():
        validate_scene(scene)
        save_mp4(render_video(scene), HERE / name, VIDEO_FPS, {"caption": caption(scene)})
        print(f"{name}: {caption(scene)}")


if __name__ == "__main__":
    main()
