"""TunaPipeline: the four tasks end to end on a random tiny model, seeding and input checks."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from PIL import Image

import tuna_core.pipeline
from tuna_core.data.tasks import DESCRIBE_IMAGE, DESCRIBE_VIDEO, edit_caption_question
from tuna_core.data.world import render_image, render_video, sample_scene
from tuna_core.layout import understanding_layout
from tuna_core.pipeline import unchanged_thought_warning, unchanged_warning

PROMPT = "a large red circle at the top left on a black background"


@pytest.fixture(scope="module")
def scene_image() -> np.ndarray:
    return render_image(sample_scene(np.random.default_rng(0)))


def pixels(result) -> list[np.ndarray]:
    return [np.asarray(img) for img in result.images]


def test_same_seed_prompt_and_settings_give_identical_images(tiny_pipeline):
    a = tiny_pipeline.text_to_image(PROMPT, seed=3, steps=4)
    b = tiny_pipeline.text_to_image(PROMPT, seed=3, steps=4)
    assert np.array_equal(pixels(a)[0], pixels(b)[0])


def test_different_seeds_give_different_images(tiny_pipeline):
    a = tiny_pipeline.text_to_image(PROMPT, seed=1, steps=4)
    b = tiny_pipeline.text_to_image(PROMPT, seed=2, steps=4)
    assert not np.array_equal(pixels(a)[0], pixels(b)[0])


def test_text_to_image_returns_the_requested_count_size_and_settings(tiny_pipeline):
    steps = []
    result = tiny_pipeline.text_to_image(
        PROMPT,
        "blue",
        seed=5,
        steps=3,
        guidance=2.0,
        height=48,
        width=80,
        num_images=2,
        progress=lambda i, n: steps.append((i, n)),
    )
    assert [img.size for img in result.images] == [(80, 48), (80, 48)]
    assert not np.array_equal(*pixels(result))  # each image has its own noise
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert result.settings | {"model": None} == result.settings | {
        "task": "t2i",
        "prompt": PROMPT,
        "negative_prompt": "blue",
        "seed": 5,
        "steps": 3,
        "guidance": 2.0,
        "height": 48,
        "width": 80,
        "num_images": 2,
        "candidates": tiny_pipeline.defaults.image_candidates,
        "model": None,
    }
    assert set(result.timings) >= {"prefill", "denoise", "decode"}


def test_guidance_one_skips_the_unconditional_branch_but_still_works(tiny_pipeline):
    result = tiny_pipeline.text_to_image(PROMPT, seed=0, steps=2, guidance=1.0)
    assert result.images[0].size == (64, 64)


def test_a_time_shift_in_the_defaults_overrides_the_models_shift(tiny_pipeline):
    model_shift = tiny_pipeline.model.shift_for(tiny_pipeline.config.latent_grid(1, 64, 64))
    base = tiny_pipeline.defaults
    images = {}
    try:
        for shift in (None, model_shift, model_shift + 2.0):
            tiny_pipeline.defaults = dataclasses.replace(base, time_shift=shift)
            images[shift] = pixels(tiny_pipeline.text_to_image(PROMPT, seed=4, steps=3))[0]
    finally:
        tiny_pipeline.defaults = base
    assert np.array_equal(images[None], images[model_shift])
    assert not np.array_equal(images[None], images[model_shift + 2.0])


def test_text_to_video_has_the_requested_frames_and_fps(tiny_pipeline):
    video = tiny_pipeline.text_to_video(PROMPT, seed=0, steps=2, num_frames=9, fps=4)
    assert video.frames.shape == (9, 64, 64, 3) and video.frames.dtype == np.uint8
    assert video.fps == 4 and video.settings["num_frames"] == 9


def _score_with(pipe, monkeypatch, scores: list[float] | None = None) -> list[tuple]:
    """Make the model's self-check scores `scores` (default: all tied); returns what each check was asked."""
    asked = []

    def fake(layouts, clean):
        asked.append((layouts, clean))
        return torch.zeros(len(layouts)) if scores is None else torch.tensor(scores)

    monkeypatch.setattr(pipe.model, "text_logprob", fake)
    return asked


def test_self_check_keeps_the_candidate_the_model_scores_highest(fresh_tiny_pipeline, monkeypatch):
    pipe = fresh_tiny_pipeline
    single = pixels(pipe.text_to_image(PROMPT, seed=6, steps=2, candidates=1))[0]
    picked = []
    for best in range(3):
        asked = _score_with(pipe, monkeypatch, [-1.0 if k == best else -5.0 for k in range(3)])
        picked.append(pixels(pipe.text_to_image(PROMPT, seed=6, steps=2, candidates=3))[0])
        ((layouts, (latents,)),) = asked
        assert latents.shape[0] == 3 and len(layouts) == 3
    assert np.array_equal(picked[0], single)  # candidate 0 is the single draw: a tie changes nothing
    assert not np.array_equal(picked[1], picked[0]) and not np.array_equal(picked[2], picked[1])


def test_self_check_asks_the_model_to_describe_each_candidate_as_the_prompt(fresh_tiny_pipeline, monkeypatch):
    pipe, tok = fresh_tiny_pipeline, fresh_tiny_pipeline.tokenizer
    cases = (  # (call, question, visual tokens per candidate, candidates in all)
        (lambda: pipe.text_to_image(PROMPT, seed=0, steps=1, num_images=2, candidates=2), DESCRIBE_IMAGE, 64, 4),
        (lambda: pipe.text_to_video(PROMPT, seed=0, steps=1, num_frames=5, candidates=2), DESCRIBE_VIDEO, 2 * 64, 2),
    )
    for call, question, tokens, rows in cases:
        asked = _score_with(pipe, monkeypatch)
        call()
        ((layouts, _),) = asked
        expected = understanding_layout(tok.special, [tokens], tok.encode(question), tok.encode(PROMPT))
        assert len(layouts) == rows and all(layout.ids == expected.ids for layout in layouts)


def test_edit_returns_an_image_of_the_model_size(tiny_pipeline, scene_image):
    result = tiny_pipeline.edit(
        Image.fromarray(scene_image).resize((100, 100)), "make the red circle blue", seed=0, steps=2
    )
    assert result.images[0].size == (64, 64)
    assert result.settings["instruction"] == "make the red circle blue"


def test_image_guidance_adds_a_branch_that_changes_the_edit(tiny_pipeline, scene_image):
    def edit(image_guidance: float):
        return tiny_pipeline.edit(
            scene_image, "make it blue", seed=0, steps=2, image_guidance=image_guidance, think=False
        )

    plain, pushed = edit(1.0), edit(4.0)
    assert plain.settings["image_guidance"] == 1.0 and pushed.settings["image_guidance"] == 4.0
    assert not np.array_equal(pixels(plain)[0], pixels(pushed)[0])
    assert np.array_equal(pixels(pushed)[0], pixels(edit(4.0))[0])


def test_an_edit_reads_its_source_as_the_chat_describes_the_image(tiny_pipeline, scene_image):
    ids = tiny_pipeline._description_ids(tiny_pipeline._encode_images([scene_image]))
    asked = tiny_pipeline.chat([{"role": "user", "content": DESCRIBE_IMAGE}], images=[scene_image])
    assert tiny_pipeline.tokenizer.decode(ids) == asked


def _unchanged_as(pipe, monkeypatch, verdicts: list[bool]) -> list[tuple]:
    """Make the model say each draw is (True) or is not (False) described as the source; returns what it was asked."""
    asked = []

    def fake(layouts, clean):
        asked.append((layouts, clean))
        return torch.tensor([verdicts[len(asked) - 1]])

    monkeypatch.setattr(pipe.model, "says", fake)
    return asked


def _direct_edit(pipe, image: np.ndarray, steps: int, candidates: int, done: list[int]):
    """An edit drawn from source and instruction (no thinking); `done` records each denoising step it reports."""
    progress = lambda i, n: done.append(i)  # noqa: E731 -- a one-line callback
    return pipe.edit(image, "make it blue", seed=0, steps=steps, candidates=candidates, progress=progress, think=False)


def test_an_edit_that_changes_nothing_is_drawn_again(fresh_tiny_pipeline, monkeypatch, scene_image):
    pipe = fresh_tiny_pipeline
    pipe.defaults = dataclasses.replace(pipe.defaults, edit_early_check=0.0)  # each draw is checked at its end only
    source_ids = pipe._description_ids(pipe._encode_images([scene_image]))

    def edit(candidates: int, verdicts: list[bool]) -> tuple[np.ndarray, int, int]:
        asked, steps = _unchanged_as(pipe, monkeypatch, verdicts), []
        result = _direct_edit(pipe, scene_image, 2, candidates, steps)
        assert result.settings["candidates"] == candidates
        for layouts, (latents,) in asked:  # each draw is asked whether the model would describe it as the source
            assert layouts[0].ids[-len(source_ids) - 1 :] == [*source_ids, pipe.tokenizer.special.eos]
            assert latents.shape == (1, pipe.config.latent_channels, 1, 16, 16)
        return pixels(result)[0], len(asked), len(steps) // 2

    single, checks, draws = edit(1, [])
    assert (checks, draws) == (0, 1)  # one draw: nothing is checked
    changed_first = edit(3, [False])
    assert np.array_equal(changed_first[0], single) and changed_first[1:] == (1, 1)
    changed_second = edit(3, [True, False])
    assert not np.array_equal(changed_second[0], single) and changed_second[1:] == (2, 2)
    assert np.array_equal(changed_second[0], edit(2, [True, False])[0])  # the draws do not depend on k
    never_changed = edit(3, [True] * 3)
    assert np.array_equal(never_changed[0], single) and never_changed[1:] == (3, 3)


def test_an_edit_draw_that_still_reads_as_the_source_part_way_is_dropped_there(
    fresh_tiny_pipeline, monkeypatch, scene_image
):
    pipe, solved = fresh_tiny_pipeline, []
    real_steps = tuna_core.pipeline.ode_steps

    def spied(*args, **kwargs):
        for step in real_steps(*args, **kwargs):
            solved.append(step)
            yield step

    monkeypatch.setattr(tuna_core.pipeline, "ode_steps", spied)

    def edit(candidates: int, verdicts: list[bool], early_check: float = 0.4) -> tuple[np.ndarray, list, list[int]]:
        """Of 5 steps, a draw is checked after 2 (0.4 of them) and after 5."""
        pipe.defaults = dataclasses.replace(pipe.defaults, edit_early_check=early_check)
        solved.clear()
        asked, steps = _unchanged_as(pipe, monkeypatch, verdicts), []
        result = _direct_edit(pipe, scene_image, 5, candidates, steps)
        return pixels(result)[0], [latents for _, (latents,) in asked], steps

    single, _, _ = edit(1, [])
    second_draw, _, _ = edit(2, [True, False], early_check=0.0)
    dropped, checked, steps = edit(2, [True, False, False])  # the first draw reads as the source after 2 steps
    assert np.array_equal(dropped, second_draw) and steps == [1, 2, 1, 2, 3, 4, 5] and len(checked) == 3
    # Both dropped part-way: the first draw is taken up where it stopped, and ends where one draw ends.
    kept, checked, steps = edit(2, [True, True])
    assert np.array_equal(kept, single) and steps == [1, 2, 1, 2, 3, 4, 5] and len(checked) == 2
    # What is checked part-way is the clean latents the step points at, not the half-noisy state.
    assert torch.equal(checked[0], solved[1].clean) and not torch.equal(checked[0], solved[1].x)


def test_an_edit_whose_every_draw_reads_as_the_source_warns_the_user(fresh_tiny_pipeline, monkeypatch, scene_image):
    fresh_tiny_pipeline.defaults = dataclasses.replace(fresh_tiny_pipeline.defaults, edit_early_check=0.0)

    def warnings(candidates: int, verdicts: list[bool]) -> list[str]:
        _unchanged_as(fresh_tiny_pipeline, monkeypatch, verdicts)
        edit = fresh_tiny_pipeline.edit(
            scene_image, "make it blue", seed=0, steps=2, candidates=candidates, think=False
        )
        return edit.warnings

    assert warnings(3, [True] * 3) == [unchanged_warning(3)]
    assert "all 3 draws" in unchanged_warning(3) and "another seed" in unchanged_warning(3)
    assert warnings(3, [True, False]) == []  # the second draw changed something
    assert warnings(1, []) == []  # a single draw is not checked, so there is nothing to warn of


def _thinks(pipe, monkeypatch, thought: str, describes_source_as: str = "") -> None:
    """Make the model answer the edit_caption question with `thought`, and describe any image as
    `describes_source_as` (every other decode)."""
    question = pipe.tokenizer.encode(edit_caption_question("make the red circle blue"))

    def decode(self, layout, latents, max_new, temperature, generator):
        said = thought if layout.ids[-len(question) :] == question else describes_source_as
        return iter(self.tokenizer.encode(said))

    monkeypatch.setattr(type(pipe), "_decode", decode)


def test_a_thinking_edit_states_the_result_then_draws_that_statement(fresh_tiny_pipeline, monkeypatch, scene_image):
    pipe, plan = fresh_tiny_pipeline, "a large blue circle at the center on a gray background"
    asked = pipe.chat([{"role": "user", "content": edit_caption_question("make the red circle blue")}], [scene_image])
    thinking = pipe.edit(scene_image, "make the red circle blue", seed=4, steps=2, candidates=2, think=True)
    assert thinking.settings["thought"] == asked  # the plan is the model's answer to the edit_caption question
    _thinks(pipe, monkeypatch, plan)
    result = pipe.edit(scene_image, "make the red circle blue", seed=4, steps=2, candidates=2, think=True)
    drawn = pipe.text_to_image(plan, seed=4, steps=2, candidates=2)
    assert (result.settings["think"], result.settings["thought"]) == (True, plan)
    assert "image_guidance" not in result.settings  # no source branch: it would only mislead in the saved settings
    assert np.array_equal(pixels(result)[0], pixels(drawn)[0]) and result.warnings == []
    direct = pipe.edit(scene_image, "make the red circle blue", seed=4, steps=2, candidates=2, think=False)
    assert "thought" not in direct.settings and not np.array_equal(pixels(direct)[0], pixels(result)[0])


def test_a_thinking_edit_whose_plan_is_the_source_caption_warns(fresh_tiny_pipeline, monkeypatch, scene_image):
    plan = "a large red circle at the center on a gray background"
    _thinks(fresh_tiny_pipeline, monkeypatch, plan, describes_source_as=plan)
    result = fresh_tiny_pipeline.edit(scene_image, "make the red circle blue", steps=1, think=True)
    assert result.warnings == [unchanged_thought_warning(plan)] and plan in result.warnings[0]


def test_a_thinking_edit_with_an_empty_plan_draws_from_source_and_instruction(
    fresh_tiny_pipeline, monkeypatch, scene_image
):
    direct = fresh_tiny_pipeline.edit(scene_image, "make the red circle blue", seed=2, steps=2, think=False)
    _thinks(fresh_tiny_pipeline, monkeypatch, "")
    result = fresh_tiny_pipeline.edit(scene_image, "make the red circle blue", seed=2, steps=2, think=True)
    assert result.settings["thought"] == "" and np.array_equal(pixels(result)[0], pixels(direct)[0])


def test_chat_answers_about_images_and_videos_deterministically(tiny_pipeline, scene_image):
    ask = [{"role": "user", "content": "What color is the background?"}]
    a = tiny_pipeline.chat(ask, images=[scene_image], max_new_tokens=5)
    assert a == tiny_pipeline.chat(ask, images=[scene_image], max_new_tokens=5)
    assert len(a.split()) <= 5
    video = render_video(sample_scene(np.random.default_rng(1), video=True))
    assert isinstance(tiny_pipeline.chat(ask, videos=[video], max_new_tokens=3), str)


def test_chat_stream_grows_token_by_token(tiny_pipeline, scene_image):
    ask = [{"role": "user", "content": "Describe the image."}]
    parts = list(tiny_pipeline.chat_stream(ask, images=[scene_image], max_new_tokens=4))
    assert 1 <= len(parts) <= 4
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(parts))


def test_multi_turn_chat_accepts_earlier_answers(tiny_pipeline, scene_image):
    turns = [
        {"role": "user", "content": "What color is the background?"},
        {"role": "assistant", "content": "black"},
        {"role": "user", "content": "How many shapes are there?"},
    ]
    assert isinstance(tiny_pipeline.chat(turns, images=[scene_image, scene_image], max_new_tokens=2), str)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.text_to_image("   "), "empty"),
        (lambda p: p.text_to_image("a " * 3000), "characters"),
        (lambda p: p.text_to_image("red " * 100), "tokens"),
        (lambda p: p.text_to_image(PROMPT, height=50), "multiple of 16"),
        (lambda p: p.text_to_image(PROMPT, width=4096), "between"),
        (lambda p: p.text_to_image(PROMPT, steps=0), "steps"),
        (lambda p: p.text_to_image(PROMPT, guidance=99.0), "guidance"),
        (lambda p: p.text_to_image(PROMPT, num_images=9), "num_images"),
        (lambda p: p.text_to_image(PROMPT, seed=-1), "seed"),
        (lambda p: p.text_to_image(PROMPT, candidates=0), "candidates must be between 1 and 8"),
        (lambda p: p.text_to_video(PROMPT, candidates=9), "candidates must be between 1 and 8"),
        (lambda p: p.text_to_video(PROMPT, num_frames=16), r"4·n\+1"),
        (lambda p: p.text_to_video(PROMPT, fps=0), "fps"),
        (lambda p: p.edit(Image.new("I;16", (8, 8)), "make it blue"), "mode"),
        (lambda p: p.edit(Image.new("RGB", (8, 8)), "make it blue", image_guidance=0.5), "image_guidance"),
        (lambda p: p.edit(Image.new("RGB", (8, 8)), "make it blue", image_guidance="high"), "image_guidance"),
        (
            lambda p: p.edit(Image.new("RGB", (8, 8)), "make it blue", candidates=9),
            "candidates must be between 1 and 8",
        ),
        (lambda p: p.chat([{"role": "user", "content": "hi"}]), "attach"),
        (lambda p: p.chat([{"role": "assistant", "content": "hi"}], images=[Image.new("RGB", (8, 8))]), "user"),
    ],
)
def test_bad_input_raises_one_clear_sentence(tiny_pipeline, call, message):
    with pytest.raises(ValueError, match=message) as err:
        call(tiny_pipeline)
    assert "\n" not in str(err.value)


def test_rgba_and_grayscale_images_are_accepted(tiny_pipeline, scene_image):
    ask = [{"role": "user", "content": "What color is the background?"}]
    for mode in ("RGBA", "L", "P"):
        image = Image.fromarray(scene_image).convert(mode)
        assert isinstance(tiny_pipeline.chat(ask, images=[image], max_new_tokens=1), str)
