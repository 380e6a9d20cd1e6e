"""Shapes World as specified in SHAPES_WORLD.md: scenes, pixels, captions, edits, questions."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from tuna_core.data import world
from tuna_core.data.tasks import (
    TASKS,
    answer_question,
    apply_edit,
    ask,
    chat_turns,
    edit_caption_question,
    edit_kind,
    make_example,
    sample_edit,
    sample_question,
    sample_video_question,
    vocabulary,
)
from tuna_core.data.world import (
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    POSITIONS,
    SIZES,
    VIDEO_FPS,
    VIDEO_FRAMES,
    PromptObject,
    Scene,
    ShapeObject,
    caption,
    paraphrase,
    parse_prompt,
    prompt_for,
    render_image,
    render_video,
    sample_scene,
    tokenize,
    validate_scene,
)

TL, TOP, TR, LEFT, CENTER, RIGHT, BL, BOTTOM, BR = range(9)


def obj(
    shape: str, color: str, size: str, cell: int, jitter: tuple[float, float] = (0.0, 0.0), direction: str | None = None
) -> ShapeObject:
    return ShapeObject(shape, color, size, cell, jitter, direction)


SPEC_SCENE = Scene(
    "black",
    (
        obj("triangle", "yellow", "small", BR),
        obj("circle", "red", "large", TL),
        obj("square", "blue", "small", CENTER),
    ),
)
SPEC_CAPTION = (
    "a large red circle at the top left, a small blue square in the center and a small "
    "yellow triangle at the bottom right on a black background"
)


def coverage(image: np.ndarray, scene: Scene, color: str) -> np.ndarray:
    """Per-pixel share of `color` over the background (1 inside, 0 outside, fractional at edges)."""
    bg = np.asarray(BACKGROUNDS[scene.background], float)
    axis = np.asarray(COLORS[color], float) - bg
    return (image.astype(float) - bg) @ axis / (axis @ axis)


def centroid(alpha: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0 : alpha.shape[0], 0 : alpha.shape[1]] + 0.5
    return float((alpha * xs).sum() / alpha.sum()), float((alpha * ys).sum() / alpha.sum())


# -- captions ---------------------------------------------------------------------------------
def test_spec_example_caption_is_reproduced_exactly() -> None:
    assert caption(SPEC_SCENE) == SPEC_CAPTION


def test_center_object_reads_in_the_center() -> None:
    scene = Scene("gray", (obj("circle", "green", "large", CENTER),))
    assert caption(scene) == "a large green circle in the center on a gray background"


def test_objects_listed_in_reading_order() -> None:
    scene = Scene("white", (obj("circle", "red", "small", BL), obj("square", "cyan", "small", RIGHT)))
    assert caption(scene) == (
        "a small cyan square at the right and a small red circle at the bottom left on a white background"
    )


def test_three_objects_joined_with_comma_and_and() -> None:
    assert caption(SPEC_SCENE).count(", ") == 1
    assert caption(SPEC_SCENE).count(" and ") == 1
    assert world.join_phrases(["X"]) == "X"
    assert world.join_phrases(["X", "Y"]) == "X and Y"
    assert world.join_phrases(["X", "Y", "Z"]) == "X, Y and Z"


def test_video_caption_uses_moving_phrase_for_movers_only() -> None:
    scene = Scene(
        "white",
        (obj("square", "blue", "large", CENTER), obj("circle", "red", "small", TR, direction="left")),
    )
    assert caption(scene) == (
        "a small red circle moving left from the top right and a large blue square in the center on a white background"
    )
    mover_in_center = Scene("black", (obj("circle", "red", "small", CENTER, direction="up"),))
    assert caption(mover_in_center) == "a small red circle moving up from the center on a black background"


def test_prompt_can_leave_out_sizes_and_background() -> None:
    rng = np.random.default_rng(0)
    assert prompt_for(SPEC_SCENE, rng, 1.0, 1.0) == (
        "a red circle at the top left, a blue square in the center and a yellow triangle at the bottom right"
    )
    assert prompt_for(SPEC_SCENE, rng, 0.0, 0.0) == SPEC_CAPTION


def test_paraphrases_name_every_object_exactly() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        scene = sample_scene(rng, video=bool(rng.integers(2)))
        text = paraphrase(scene, rng)
        assert scene.background in tokenize(text)
        for o in scene.objects:
            assert f"{o.size} {o.color} {o.shape}" in text
            assert f"the {o.position}" in text
            if o.direction is not None:
                assert f" {o.direction} from the {o.position}" in text


# -- parsing ----------------------------------------------------------------------------------
def test_parse_prompt_round_trips_image_and_video_captions() -> None:
    rng = np.random.default_rng(2)
    for i in range(300):
        scene = sample_scene(rng, video=i % 2 == 1)
        spec = parse_prompt(caption(scene))
        assert spec.background == scene.background
        assert sorted(spec.objects, key=lambda o: o.cell) == [
            PromptObject(o.shape, o.color, o.cell, o.size, o.direction)
            for o in sorted(scene.objects, key=lambda o: o.cell)
        ]
        assert spec.matches(scene)


def test_parse_prompt_reads_left_out_sizes_and_background_as_unknown() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        scene = sample_scene(rng, video=bool(rng.integers(2)))
        spec = parse_prompt(prompt_for(scene, rng, 1.0, 1.0))
        assert spec.background is None
        assert all(o.size is None for o in spec.objects)
        assert spec.matches(scene)
        other = Scene(
            "gray" if scene.background != "gray" else "white",
            tuple(ShapeObject(o.shape, o.color, "small", o.cell, direction=o.direction) for o in scene.objects),
        )
        assert spec.matches(other)  # size and background are the generator's choice


def test_parse_prompt_accepts_at_the_center_and_case_and_period() -> None:
    spec = parse_prompt("A small blue square at the center on a black background.")
    assert spec.objects == (PromptObject("square", "blue", CENTER, "small", None),)
    assert spec.background == "black"


def test_prompt_spec_rejects_wrong_scenes() -> None:
    spec = parse_prompt(SPEC_CAPTION)
    moved = apply_edit(SPEC_SCENE, "move the red circle to the top")
    assert not spec.matches(moved)
    assert not spec.matches(Scene("white", SPEC_SCENE.objects))
    assert not spec.matches(Scene("black", (*SPEC_SCENE.objects, obj("square", "red", "small", TOP))))


def test_object_hits_give_partial_credit_for_colour_at_cell_and_for_exact_objects() -> None:
    spec = parse_prompt(SPEC_CAPTION)
    circle, square, triangle = SPEC_SCENE.objects[1], SPEC_SCENE.objects[2], SPEC_SCENE.objects[0]
    assert spec.object_hits(SPEC_SCENE) == (3, 3)
    reshaped = SPEC_SCENE.replace(circle, obj("triangle", "red", "large", TL))  # right colour and cell
    assert spec.object_hits(reshaped) == (3, 2)
    resized = SPEC_SCENE.replace(square, obj("square", "blue", "large", CENTER))  # the caption names the size
    assert spec.object_hits(resized) == (3, 2)
    moved = SPEC_SCENE.replace(triangle, obj("triangle", "yellow", "small", BOTTOM))  # wrong cell
    assert spec.object_hits(moved) == (2, 2)
    assert spec.object_hits(Scene("black", ())) == (0, 0)
    extra = Scene("white", (*SPEC_SCENE.objects, obj("circle", "green", "small", BOTTOM)))
    assert spec.object_hits(extra) == (3, 3) and not spec.matches(extra)  # extras and background cost nothing here


@pytest.mark.parametrize(
    "text",
    [
        "a purple circle at the top",
        "a red circle at the top and",
        "a red circle at the top and a red circle at the left",  # same object twice
        "a red circle at the top and a blue square at the top",  # one cell twice
        "a red circle moving up from the top",  # leaves the grid
        "",
    ],
)
def test_parse_prompt_rejects_text_that_is_not_a_valid_caption(text: str) -> None:
    with pytest.raises(ValueError, match=r"cannot parse|does not describe"):
        parse_prompt(text)


# -- sampling ---------------------------------------------------------------------------------
def test_sampled_scenes_obey_every_rule() -> None:
    rng = np.random.default_rng(4)
    counts, moving, total, directions = set(), 0, 0, set()
    for i in range(600):
        scene = sample_scene(rng, video=i % 2 == 1)
        validate_scene(scene)
        counts.add(len(scene.objects))
        for o in scene.objects:
            assert all(abs(j) <= 0.03 for j in o.jitter)
            if i % 2:
                total += 1
                moving += o.direction is not None
                directions.add(o.direction)
            else:
                assert o.direction is None
        if i % 2:
            assert scene.is_video
    assert counts == {1, 2, 3}
    assert moving / total >= 0.5
    assert directions == {*DIRECTIONS, None}


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ((), "0 objects"),
        (tuple(obj("circle", c, "small", i) for i, c in enumerate(list(COLORS)[:4])), "4 objects"),
        ((obj("circle", "red", "small", TL), obj("circle", "red", "large", BR)), "names an object twice"),
        ((obj("circle", "red", "small", TL), obj("square", "red", "large", TL)), "collide"),
        ((obj("circle", "red", "small", TL, direction="right"), obj("square", "red", "large", TOP)), "collide"),
        (
            (obj("circle", "red", "small", TL, direction="right"), obj("square", "red", "large", TR, direction="left")),
            "collide",
        ),
        ((obj("circle", "red", "small", TL, direction="up"),), "leaves the grid"),
        ((obj("circle", "red", "small", TL, jitter=(0.01, 0.0), direction="down"),), "moving objects have none"),
    ],
)
def test_validate_scene_names_the_broken_rule(objects: tuple[ShapeObject, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_scene(Scene("black", objects))


def test_objects_reject_words_outside_the_world() -> None:
    with pytest.raises(ValueError, match="purple"):
        obj("circle", "purple", "small", TL)
    with pytest.raises(ValueError, match="jitter"):
        obj("circle", "red", "small", TL, jitter=(0.05, 0.0))
    with pytest.raises(ValueError, match="cell 9"):
        obj("circle", "red", "small", 9)


# -- pixels -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
@pytest.mark.parametrize("size", ["small", "large"])
def test_rendered_box_has_spec_side_and_centre(shape: str, size: str) -> None:
    n, jitter = 128, (0.021, -0.013)
    scene = Scene("gray", (obj(shape, "red", size, RIGHT, jitter=jitter),))
    alpha = coverage(render_image(scene, n), scene, "red")
    side = SIZES[size] * n
    fill = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}[shape]
    assert alpha.sum() == pytest.approx(fill * side**2, rel=0.02)  # edges sit on a 1/4-pixel supersampling grid
    rows, cols = np.nonzero(alpha > 0.01)  # pixels the box touches: side <= extent <= side + 2
    assert side - 0.5 <= np.ptp(rows) + 1 <= side + 2
    assert side - 0.5 <= np.ptp(cols) + 1 <= side + 2
    cx, cy = centroid(alpha)
    if shape == "triangle":
        cy -= side / 6  # area centroid of an apex-up triangle is side/6 below the box centre
    assert cx == pytest.approx((2 + 0.5) * n / 3 + jitter[0] * n, abs=0.15)
    assert cy == pytest.approx((1 + 0.5) * n / 3 + jitter[1] * n, abs=0.15)


def test_box_centres_stay_within_jitter_of_cell_centres() -> None:
    rng = np.random.default_rng(5)
    n = 64
    for _ in range(40):
        scene = sample_scene(rng)
        image = render_image(scene, n)
        for o in scene.objects:
            row, col = divmod(o.cell, 3)
            alpha = np.zeros((n, n))
            cell = np.s_[row * n // 3 : (row + 1) * n // 3 + 1, col * n // 3 : (col + 1) * n // 3 + 1]
            alpha[cell] = coverage(image, scene, o.color)[cell].clip(0, 1)
            cx, cy = centroid(alpha)
            if o.shape == "triangle":
                cy -= SIZES[o.size] * n / 6
            assert abs(cx - (col + 0.5) * n / 3) <= 0.03 * n + 0.15
            assert abs(cy - (row + 0.5) * n / 3) <= 0.03 * n + 0.15


def test_flat_interiors_have_exact_spec_colours_and_background_is_untouched() -> None:
    image = render_image(SPEC_SCENE, 64)
    assert tuple(image[0, 63]) == BACKGROUNDS["black"]
    assert tuple(image[32, 5]) == BACKGROUNDS["black"]
    for o in SPEC_SCENE.objects:
        row, col = divmod(o.cell, 3)
        x, y = int((col + 0.5) * 64 / 3), int((row + 0.5) * 64 / 3)
        assert tuple(image[y, x]) == COLORS[o.color]
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert {COLORS[o.color] for o in SPEC_SCENE.objects} <= colours


def test_edges_are_anti_aliased() -> None:
    scene = Scene("black", (obj("circle", "yellow", "large", CENTER),))
    alpha = coverage(render_image(scene, 64), scene, "yellow")
    partial = (alpha > 0.05) & (alpha < 0.95)
    assert partial.sum() >= 20


def test_triangle_apex_points_up() -> None:
    scene = Scene("white", (obj("triangle", "blue", "large", CENTER),))
    alpha = coverage(render_image(scene, 128), scene, "blue")
    widths = alpha.sum(axis=1)
    rows = np.nonzero(widths > 0.5)[0]
    top, bottom = widths[rows[0] + 2], widths[rows[-1] - 2]
    assert top < bottom / 4
    assert np.all(np.diff(widths[rows[0] : rows[-1]]) >= -1e-6)  # widens monotonically downwards


def test_video_moves_from_cell_centre_to_neighbour_centre_at_constant_speed() -> None:
    n = 96
    scene = Scene("gray", (obj("square", "green", "small", LEFT, direction="right"),))
    video = render_video(scene, n)
    assert video.shape == (VIDEO_FRAMES, n, n, 3) and video.dtype == np.uint8
    assert VIDEO_FRAMES == 17 and VIDEO_FPS == 8
    xs = []
    for frame in video:
        cx, cy = centroid(coverage(frame, scene, "green").clip(0, 1))
        assert cy == pytest.approx(1.5 * n / 3, abs=0.05)
        xs.append(cx)
    assert xs[0] == pytest.approx(0.5 * n / 3, abs=0.05)
    assert xs[-1] == pytest.approx(1.5 * n / 3, abs=0.05)
    np.testing.assert_allclose(np.diff(xs), (n / 3) / (VIDEO_FRAMES - 1), atol=0.05)


def test_vertical_moves_go_the_named_way() -> None:
    n = 64
    for direction, sign in (("up", -1), ("down", 1)):
        scene = Scene("black", (obj("circle", "cyan", "large", CENTER, direction=direction),))
        video = render_video(scene, n)
        y0 = centroid(coverage(video[0], scene, "cyan").clip(0, 1))[1]
        y1 = centroid(coverage(video[-1], scene, "cyan").clip(0, 1))[1]
        assert y1 - y0 == pytest.approx(sign * n / 3, abs=0.05)


def test_moving_objects_never_overlap() -> None:
    rng = np.random.default_rng(6)
    for _ in range(30):
        scene = sample_scene(rng, video=True, min_objects=3)
        for t in (0.25, 0.5, 0.75):
            boxes = [world.object_box(o, 64, t) for o in scene.objects]
            for i, (x1, y1, s1) in enumerate(boxes):
                for x2, y2, s2 in boxes[i + 1 :]:
                    assert max(abs(x1 - x2), abs(y1 - y2)) > (s1 + s2) / 2


def test_image_is_video_frame_zero() -> None:
    scene = sample_scene(np.random.default_rng(7), video=True)
    np.testing.assert_array_equal(render_image(scene, 64), render_video(scene, 64)[0])


def test_same_seed_gives_identical_examples() -> None:
    for task in TASKS:
        a, b = (make_example(task, np.random.default_rng(42)) for _ in range(2))
        assert (a.text, a.answer, a.scene, a.target_scene) == (b.text, b.answer, b.scene, b.target_scene)
        for field in ("image", "video", "target_image"):
            left, right = getattr(a, field), getattr(b, field)
            assert (left is None) == (right is None)
            if left is not None:
                np.testing.assert_array_equal(left, right)


# -- edits ------------------------------------------------------------------------------------
BASE = Scene(
    "gray",
    (
        obj("circle", "red", "large", TL, jitter=(0.01, -0.02)),
        obj("square", "blue", "small", CENTER, jitter=(0.0, 0.02)),
    ),
)


def test_recolour_edit_changes_only_the_colour() -> None:
    edited = apply_edit(BASE, "make the red circle green")
    assert edited.find("green", "circle") == obj("circle", "green", "large", TL, jitter=(0.01, -0.02))
    assert edited.find("red", "circle") is None
    assert edited.find("blue", "square") == BASE.find("blue", "square")


def test_remove_edit_drops_the_object() -> None:
    assert apply_edit(BASE, "remove the blue square").objects == (BASE.objects[0],)


@pytest.mark.parametrize("where", ["at the center", "in the center"])
def test_add_edit_places_a_new_object_in_an_empty_cell(where: str) -> None:
    scene = Scene("black", (obj("circle", "red", "large", TL),))
    edited = apply_edit(scene, f"add a small yellow triangle {where}")
    assert edited.objects == (scene.objects[0], obj("triangle", "yellow", "small", CENTER))


def test_move_edit_keeps_size_and_colour() -> None:
    edited = apply_edit(BASE, "move the red circle to the bottom right")
    assert edited.find("red", "circle") == obj("circle", "red", "large", BR)
    assert edited.find("blue", "square") == BASE.find("blue", "square")


@pytest.mark.parametrize(
    ("instruction", "kind"),
    [
        ("make the red circle green", "recolor"),
        ("Remove the blue square.", "remove"),
        ("add a small yellow triangle in the center", "add"),
        ("move the red circle to the bottom right", "move"),
    ],
)
def test_edit_kind_names_the_spec_edit(instruction: str, kind: str) -> None:
    assert edit_kind(instruction) == kind


def test_an_edit_caption_example_asks_for_the_caption_of_the_edits_result() -> None:
    for seed in range(20):
        example = make_example("edit_caption", np.random.default_rng(seed))
        instruction = example.text.removesuffix(". Describe the image.")
        assert example.text == edit_caption_question(instruction) != instruction
        assert example.answer == caption(apply_edit(example.scene, instruction)) == caption(example.target_scene)
        np.testing.assert_array_equal(example.image, render_image(example.scene))  # the source, as edits see it
    assert edit_caption_question(" Remove the red circle. ") == "Remove the red circle. Describe the image."
    assert set(tokenize(edit_caption_question("add a small red circle in the center"))) <= set(vocabulary())


def test_edit_kind_rejects_text_that_is_no_spec_edit() -> None:
    with pytest.raises(ValueError, match="cannot parse edit 'paint the red circle green'"):
        edit_kind("paint the red circle green")


@pytest.mark.parametrize(
    ("instruction", "message"),
    [
        ("paint the red circle green", "cannot parse"),
        ("make the green circle red", "there is no green circle"),
        ("make the red circle blue", None),  # allowed: no blue circle yet
        ("add a small red circle at the top", "already has a red circle"),
        ("add a small red square at the center", "occupied"),
        ("move the red circle to the center", "occupied"),
        ("remove the purple circle", "cannot parse"),
    ],
)
def test_edits_that_do_not_apply_raise(instruction: str, message: str | None) -> None:
    if message is None:
        validate_scene(apply_edit(BASE, instruction))
        return
    with pytest.raises(ValueError, match=message):
        apply_edit(BASE, instruction)


def test_edits_refuse_to_remove_the_last_object_or_add_a_fourth() -> None:
    with pytest.raises(ValueError, match="only object"):
        apply_edit(Scene("black", (obj("circle", "red", "large", TL),)), "remove the red circle")
    with pytest.raises(ValueError, match="3 objects"):
        apply_edit(SPEC_SCENE, "add a small green circle at the top")
    with pytest.raises(ValueError, match="there is already a blue circle"):
        apply_edit(
            Scene("black", (obj("circle", "red", "large", TL), obj("circle", "blue", "large", TR))),
            "make the red circle blue",
        )


def test_sampled_edits_cover_every_operation_and_touch_one_object() -> None:
    rng = np.random.default_rng(8)
    verbs = set()
    for _ in range(300):
        scene = sample_scene(rng)
        instruction, edited = sample_edit(scene, rng)
        verbs.add(instruction.split()[0])
        validate_scene(edited)
        assert edited == apply_edit(scene, instruction)
        kept = set(scene.objects) & set(edited.objects)
        assert len(kept) >= len(scene.objects) - 1  # untouched objects are identical, jitter included
        assert len(set(edited.objects) - kept) <= 1
    assert verbs == {"make", "remove", "add", "move"}


def test_edit_target_keeps_untouched_pixels() -> None:
    example = make_example("edit", np.random.default_rng(9))
    assert example.target_scene is not None and example.image is not None
    np.testing.assert_array_equal(example.target_image, render_image(example.target_scene, 64))
    assert example.image.shape == example.target_image.shape == (64, 64, 3)


# -- questions --------------------------------------------------------------------------------
VIDEO_SCENE = Scene(
    "white",
    (obj("circle", "red", "small", TR, direction="left"), obj("square", "red", "large", BOTTOM)),
)


@pytest.mark.parametrize(
    ("scene", "question", "answer"),
    [
        (SPEC_SCENE, "What color is the circle?", "red"),
        (SPEC_SCENE, "What shape is the blue object?", "square"),
        (SPEC_SCENE, "How many shapes are there?", "three"),
        (BASE, "How many shapes are there?", "two"),
        (SPEC_SCENE, "Where is the red circle?", "top left"),
        (SPEC_SCENE, "Where is the blue square?", "center"),
        (SPEC_SCENE, "Is there a red circle?", "yes"),
        (SPEC_SCENE, "Is there a red square?", "no"),
        (SPEC_SCENE, "What color is the background?", "black"),
        (SPEC_SCENE, "Describe the image.", SPEC_CAPTION),
        (BASE, "What color is the triangle?", "there is no triangle"),
        (SPEC_SCENE, "What shape is the green object?", "there is no green object"),
        (SPEC_SCENE, "Where is the red square?", "there is no red square"),
        (SPEC_SCENE, "Which way is the red triangle moving?", "there is no red triangle"),
        (VIDEO_SCENE, "Which way is the red circle moving?", "left"),
        (VIDEO_SCENE, "Which way is the red square moving?", "not moving"),
        (VIDEO_SCENE, "What color is the circle?", "red"),
        (VIDEO_SCENE, "Where is the red square?", "bottom"),
        (
            VIDEO_SCENE,
            "Describe the video.",
            "a small red circle moving left from the top right and a large red square at the bottom "
            "on a white background",
        ),
        (BASE, "what color is the   background?", "gray"),
    ],
)
def test_answers_match_the_spec_table(scene: Scene, question: str, answer: str) -> None:
    assert answer_question(scene, question) == answer


def test_ambiguous_or_unknown_questions_raise() -> None:
    with pytest.raises(ValueError, match="ambiguous"):
        answer_question(VIDEO_SCENE, "What shape is the red object?")
    with pytest.raises(ValueError, match="not a Shapes World question"):
        answer_question(SPEC_SCENE, "What is the meaning of this?")


def test_sampled_questions_cover_the_table_and_are_never_ambiguous() -> None:
    rng = np.random.default_rng(10)
    starts, is_there, answers = set(), [], []
    for _ in range(700):
        scene = sample_scene(rng)
        question, answer = sample_question(scene, rng)
        answers.append(answer)
        assert answer == answer_question(scene, question)
        starts.add(" ".join(question.split()[:2]))
        if question.startswith("Is there"):
            is_there.append(answer == "yes")
        if question.startswith("Where"):
            assert answer in POSITIONS or answer.startswith("there is no ")
    assert starts == {"What color", "What shape", "How many", "Where is", "Is there", "Describe the"}
    assert 0.4 < np.mean(is_there) < 0.6
    absent = {
        re.sub(r"\b(red|yellow|green|cyan|blue|magenta)\b", "C", a) for a in answers if a.startswith("there is no")
    }
    absent = {re.sub(r"\b(circle|square|triangle)\b", "S", a) for a in absent}
    assert absent == {"there is no S", "there is no C object", "there is no C S"}


def test_sampled_video_questions_ask_about_motion() -> None:
    rng = np.random.default_rng(11)
    answers = []
    for _ in range(400):
        scene = sample_scene(rng, video=True)
        question, answer = sample_video_question(scene, rng)
        assert answer == answer_question(scene, question)
        if question.startswith("Which way"):
            answers.append(answer)
        if question.startswith("Where is"):  # never about a mover: it has no single place
            found = scene.find(*question.removeprefix("Where is the ").removesuffix("?").split())
            assert found is None or found.direction is None
    assert set(answers) >= {*DIRECTIONS, "not moving"}
    assert any(a.startswith("there is no ") for a in answers)


UNDERSTANDING = ("caption", "qa", "video_qa")


@pytest.mark.parametrize("task", UNDERSTANDING)
def test_a_follow_up_sample_ends_with_its_own_question_after_right_answers_on_the_same_scene(task) -> None:
    rng = np.random.default_rng(13)
    lengths, earlier_questions = set(), set()
    for _ in range(80):
        scene = sample_scene(rng, video=task == "video_qa")
        own = ask(task, scene, copy.deepcopy(rng))
        turns = chat_turns(task, scene, rng, follow_ups=1.0)
        assert turns[-1] == own
        assert all(answer == answer_question(scene, question) for question, answer in turns)
        lengths.add(len(turns))
        earlier_questions |= {" ".join(q.split()[:2]) for q, _ in turns[:-1]}
    assert lengths == {2, 3}
    if task == "video_qa":
        assert "Which way" in earlier_questions
    else:  # an image chat mixes descriptions and questions
        assert {"Describe the", "What color"} <= earlier_questions


@pytest.mark.parametrize("task", UNDERSTANDING)
def test_without_follow_ups_a_sample_is_one_turn_and_draws_what_it_always_drew(task) -> None:
    scene = sample_scene(np.random.default_rng(14), video=task == "video_qa")
    rng, replay = np.random.default_rng(15), np.random.default_rng(15)
    assert chat_turns(task, scene, rng, follow_ups=0.0) == [ask(task, scene, replay)]
    assert rng.random() == replay.random()  # the stream after it is untouched, so old runs replay


def test_follow_ups_is_the_share_of_chats_with_earlier_turns() -> None:
    rng = np.random.default_rng(16)
    scenes = [sample_scene(rng) for _ in range(400)]
    share = np.mean([len(chat_turns("qa", s, rng, follow_ups=0.3)) > 1 for s in scenes])
    assert 0.24 < share < 0.36


# -- examples and vocabulary ------------------------------------------------------------------
def test_make_example_returns_what_each_task_trains_on() -> None:
    rng = np.random.default_rng(12)
    shapes = {
        "caption": ("image", (64, 64, 3)),
        "qa": ("image", (64, 64, 3)),
        "t2i": ("image", (64, 64, 3)),
        "edit": ("target_image", (64, 64, 3)),
        "video_qa": ("video", (17, 64, 64, 3)),
        "t2v": ("video", (17, 64, 64, 3)),
        "edit_caption": ("image", (64, 64, 3)),
    }
    assert set(shapes) == set(TASKS)
    for task, (field, shape) in shapes.items():
        example = make_example(task, rng)
        pixels = getattr(example, field)
        assert pixels.shape == shape and pixels.dtype == np.uint8
        assert (example.answer is not None) == (task in ("caption", "qa", "video_qa", "edit_caption"))
    assert make_example("caption", rng).text == "Describe the image."
    with pytest.raises(ValueError, match="unknown task 'painting'"):
        make_example("painting", rng)


def test_generation_prompts_mix_canonical_paraphrased_and_shortened() -> None:
    rng = np.random.default_rng(13)
    parsed, dropped = 0, 0
    for _ in range(200):
        example = make_example("t2i", rng)
        try:
            spec = parse_prompt(example.text)
        except ValueError:
            continue  # a paraphrase
        parsed += 1
        assert spec.matches(example.scene)
        dropped += spec.background is None or any(o.size is None for o in spec.objects)
    assert 100 < parsed < 200 and dropped > 10


def test_vocabulary_covers_every_generated_string() -> None:
    vocab = vocabulary()
    assert vocab == sorted(set(vocab)) and all(w == w.lower() for w in vocab)
    rng = np.random.default_rng(14)
    texts: list[str] = []
    for _ in range(150):
        for task in TASKS:
            scene = sample_scene(rng, video=task in ("video_qa", "t2v"))
            texts += [caption(scene), paraphrase(scene, rng), prompt_for(scene, rng, 0.5, 0.5)]
            texts += sample_video_question(scene, rng) if scene.is_video else sample_question(scene, rng)
            if not scene.is_video:
                texts.append(sample_edit(scene, rng)[0])
    missing = {t for text in texts for t in tokenize(text)} - set(vocab)
    assert not missing
    assert tokenize("Where is the red circle?") == ["where", "is", "the", "red", "circle", "?"]
    assert len(vocab) < 80  # the tiny model's word-level vocabulary stays small
