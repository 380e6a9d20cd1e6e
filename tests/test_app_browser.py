"""The app in a real browser: Chromium (Debian's) driven by Playwright runs every tab once and rates results.

Screenshots of each step go to the pytest tmp folder; with TUNA_SCREENSHOTS_DIR set (the README's
come from `TUNA_SCREENSHOTS_DIR=docs/screenshots`) they are also copied there, taken on the bundled
model when it is there, so a plain test run never changes the repository.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import running_app
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tuna_core.annotations import AnnotationStore
from tuna_core.config import BUNDLED_MODEL
from tuna_core.media import load_image
from tuna_core.pipeline import TunaPipeline

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000  # a generation on a busy 2-core CPU; each one here takes a second or two
NOTE = "Random weights: tests run the tiny preset with random weights; outputs are noise."

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def shown(tiny_pipeline: TunaPipeline) -> tuple[TunaPipeline, list[str]]:
    """The model the app serves and the notes it shows: random tiny weights with their note, or, when README
    screenshots are being taken and the bundled model is there, that model (what a user gets)."""
    if os.environ.get("TUNA_SCREENSHOTS_DIR") and (BUNDLED_MODEL / "config.json").is_file():
        return TunaPipeline.from_pretrained(BUNDLED_MODEL), []
    return tiny_pipeline, [NOTE]


@pytest.fixture(scope="module")
def served(
    shown: tuple[TunaPipeline, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AnnotationStore, str]]:
    with running_app(shown[0], tmp_path_factory.mktemp("data"), notes=shown[1]) as served:
        yield served


def set_slider(scope: Locator, label: str, value: int, attempts: int = 3) -> None:
    """Type `value` into a slider's number box and wait for the slider itself to move, the sign the app has it.

    Keys typed into a freshly opened accordion can land before Svelte has bound the box's listeners (seen on
    a loaded CI machine): the box shows the number but the app keeps the old one. Typing again then takes.
    """
    box = scope.get_by_label(f"number input for {label}")
    slider = scope.get_by_label(f"range slider for {label}")
    for attempt in range(attempts):
        box.fill(str(value))
        box.press("Enter")
        try:
            expect(slider).to_have_value(str(value), timeout=5_000)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


@pytest.fixture(scope="module")
def page(served: tuple[AnnotationStore, str]) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(served[1])
        yield page
        browser.close()


def test_every_tab_runs_in_the_browser_and_results_can_be_rated(
    page: Page, served: tuple[AnnotationStore, str], shown: tuple[TunaPipeline, list[str]], tmp_path: Path
) -> None:
    store = served[0]
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def snap(name: str) -> None:
        page.wait_for_timeout(300)  # let the last frame settle
        page.screenshot(path=shots / f"{name}.png", full_page=True)

    def rate(tab: str, score: int, comment: str) -> None:
        panel = page.locator(f"#tab-{tab}")
        panel.get_by_label(str(score), exact=True).check()
        panel.get_by_label("Comment", exact=True).fill(comment)
        panel.get_by_role("button", name="Save rating").click()
        panel.get_by_text(f"({score}/5).").wait_for()

    # Header: what TUNA is, which model is loaded, and the random-weights note when there is one.
    page.get_by_text("is a native unified multimodal model").wait_for()
    pipe, notes = shown
    page.get_by_text(pipe.model_id, exact=True).wait_for()
    for note in notes:
        page.get_by_text(note).wait_for()
    page.locator("#annotator").get_by_role("textbox").fill("browser-annotator")
    snap("01-home")

    # Chat: one click on an example streams the model's answer about the example image.
    chat = page.locator("#tab-chat")
    chat.get_by_text("What color is the circle?").first.click()
    expected = pipe.chat(
        [{"role": "user", "content": "What color is the circle?"}],
        [load_image(ROOT / "assets" / "examples" / "red_circle_blue_square.png")],
    )
    answers = page.locator("#chat-conversation").get_by_test_id("bot")
    expect(answers.first).to_contain_text(expected)
    # A follow-up turn is answered about the same image, with the first answer in the context.
    follow_up = [
        {"role": "user", "content": "What color is the circle?"},
        {"role": "assistant", "content": expected},
        {"role": "user", "content": "Describe the image."},
    ]
    expected = pipe.chat(follow_up, [load_image(ROOT / "assets" / "examples" / "red_circle_blue_square.png")])
    chat.get_by_role("textbox").first.fill("Describe the image.")
    chat.get_by_role("textbox").first.press("Enter")
    expect(answers).to_have_count(2)
    expect(answers.nth(1)).to_contain_text(expected)
    rate("chat", 4, "answered in the browser")
    snap("02-chat")

    # Text → Image: a typed prompt with two images; a gallery image appears.
    page.get_by_role("tab", name="Text → Image").click()
    t2i = page.locator("#tab-t2i")
    t2i.get_by_label("Prompt", exact=True).fill(
        "a large red circle at the top left and a small blue square in the center"
    )
    t2i.get_by_role("button", name="Settings").click()
    set_slider(t2i, "Number of images", 2)
    t2i.get_by_role("button", name="Generate", exact=True).click()
    page.locator("#t2i-gallery img").nth(1).wait_for()
    rate("t2i", 5, "two images")
    snap("03-text-to-image")

    # Bad input shows a plain sentence and the app keeps working.
    t2i.get_by_label("Prompt", exact=True).fill("")
    t2i.get_by_role("button", name="Generate", exact=True).click()
    toast = page.get_by_test_id("toast-body").filter(has_text="the prompt is empty; type what you want")
    toast.wait_for()
    snap("04-error")
    toast.get_by_test_id("toast-close").click()

    # Text → Video: an example runs in one click; the MP4 plays in a video element.
    page.get_by_role("tab", name="Text → Video").click()
    t2v = page.locator("#tab-t2v")
    t2v.get_by_text("a small yellow triangle moving down").first.click()
    page.wait_for_function("() => document.querySelector('#t2v-video video')?.readyState >= 2", timeout=TIMEOUT_MS)
    rate("t2v", 2, "video plays")
    snap("05-text-to-video")

    # Edit: an example (image + instruction) runs in one click; the result appears beside the source, and
    # the model's plan (the tiny preset thinks first) beside it.
    page.get_by_role("tab", name="Edit").click()
    edit = page.locator("#tab-edit")
    edit.get_by_text("make the red circle blue").first.click()
    page.locator("#edit-result img").wait_for()
    expect(page.locator("#edit-plan")).to_contain_text("The model's plan: ")
    rate("edit", 3, "edit shown beside its source")
    snap("06-edit")

    # Compare: two seeds of one prompt side by side; pick A.
    page.get_by_role("tab", name="Compare A/B").click()
    compare = page.locator("#tab-compare")
    compare.get_by_label("Prompt", exact=True).fill("a small green triangle at the top right")
    compare.get_by_role("button", name="Generate A and B").click()
    page.locator("#compare-a img").wait_for()
    page.locator("#compare-b img").wait_for()
    compare.get_by_role("button", name="A is better").click()
    page.locator("#compare-status").get_by_text("A is better").wait_for()
    snap("07-compare")

    # Ratings: the table lists what was just rated.
    page.get_by_role("tab", name="Ratings").click()
    expect(page.locator("#ratings-table")).to_contain_text("edit shown beside its source")
    expect(page.locator("#ratings-table")).to_contain_text("browser-annotator")
    snap("08-ratings")

    # System: device, engines, memory and the last request's stages.
    page.get_by_role("tab", name="System").click()
    expect(page.locator("#system-info")).to_contain_text("denoise")  # refreshed when the tab opens
    snap("09-system")

    rows = [r for r in store.rows() if r["annotator"] == "browser-annotator"]
    assert sorted((r["kind"], r["task"]) for r in rows) == [
        ("comparison", "t2i"),
        ("rating", "chat"),
        ("rating", "edit"),
        ("rating", "t2i"),
        ("rating", "t2v"),
    ]
    assert all((store.root / r["output"]).is_file() for r in rows)

    if keep := os.environ.get("TUNA_SCREENSHOTS_DIR"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in sorted(shots.glob("*.png")):
            shutil.copy(shot, Path(keep) / shot.name)
