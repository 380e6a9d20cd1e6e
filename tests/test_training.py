"""Training: the schedule, equal-compute ablation recipes, the decoupled baseline and exact resume."""

import dataclasses
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import load_file

from tuna_core.checkpoint import load_model, save_pretrained
from tuna_core.cli import build_parser, train_configs
from tuna_core.config import TASK_GROUPS, ModelConfig, TrainConfig
from tuna_core.data.tasks import edit_caption_question, vocabulary
from tuna_core.data.world import caption, render_image, render_video, sample_scene
from tuna_core.eval.heldout import held_out_set
from tuna_core.layout import generation_layout
from tuna_core.media import to_frames, to_pixels
from tuna_core.model import SequenceBatch, TunaModel
from tuna_core.model.visual import LatentVAE
from tuna_core.sampler import sample_train_time
from tuna_core.tokenizer import TunaTokenizer
from tuna_core.train.cache import LatentCache, build_cache, edit_of, render_cached
from tuna_core.train.common import get_lr
from tuna_core.train.joint import CHANGE_THRESHOLD, EMA, edit_change_weights, make_batch, task_losses, train_joint
from tuna_core.train.vae import held_out_errors, keyframe_video_path, object_mask, object_weighted_l1, read_exactly

ROOT = Path(__file__).resolve().parent.parent


def test_lr_warms_up_decays_and_stays_at_the_floor():
    lrs = [get_lr(s, 1.0, 10, 100, 0.1) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:101]))
    assert lrs[100] == lrs[119] == pytest.approx(0.1)


@pytest.mark.parametrize("group", list(TASK_GROUPS))
def test_every_recipe_sees_as_many_samples_per_step_as_joint(group):
    cfg = TrainConfig(tasks=TASK_GROUPS[group])
    batches = cfg.task_batches()
    assert set(batches) == {t for t in TASK_GROUPS[group] if cfg.batch[t]}  # a size of 0 leaves a task out
    assert sum(batches.values()) == pytest.approx(sum(cfg.batch.values()), abs=len(batches))


@pytest.mark.parametrize(
    ("flags", "tasks", "representation"),
    [
        ([], TrainConfig.tasks, "unified"),
        (["--tasks", "understanding"], TASK_GROUPS["understanding"], "unified"),
        (["--tasks", "generation", "--representation", "decoupled"], TASK_GROUPS["generation"], "decoupled"),
    ],
)
def test_train_command_line_reaches_the_recipe(flags, tasks, representation, tmp_path):
    args = build_parser().parse_args(["train", "--out", str(tmp_path), "--steps", "7", *flags])
    model_config, cfg = train_configs(args)
    assert cfg.tasks == tasks and cfg.steps == 7
    assert model_config.representation == representation


def test_learning_rate_and_precision_flags_reach_the_recipe(tmp_path):
    argv = ["train", "--out", str(tmp_path), "--lr", "3e-4", "--mixed-precision", "bf16"]
    _, cfg = train_configs(build_parser().parse_args(argv))
    assert cfg.lr == 3e-4 and cfg.mixed_precision == "bf16"
    _, default = train_configs(build_parser().parse_args(["train", "--out", str(tmp_path)]))
    assert default.lr == TrainConfig.lr and default.mixed_precision == "auto"


def test_follow_ups_flag_reaches_the_recipe_and_must_be_a_probability(tmp_path):
    argv = ["train", "--out", str(tmp_path), "--follow-ups", "0.5"]
    assert train_configs(build_parser().parse_args(argv))[1].follow_ups == 0.5
    assert TrainConfig().follow_ups == 0.0  # the first seven runs of the README recipe trained without
    with pytest.raises(ValueError, match=r"between 0 and 1; got 1\.5"):
        TrainConfig(follow_ups=1.5)


def test_batch_flag_resizes_the_named_tasks_and_keeps_the_others(tmp_path):
    argv = ["train", "--out", str(tmp_path), "--batch", "t2i=32, qa=8"]
    _, cfg = train_configs(build_parser().parse_args(argv))
    assert cfg.batch == TrainConfig().batch | {"t2i": 32, "qa": 8}
    assert cfg.task_batches() == {task: size for task, size in cfg.batch.items() if size}
    with pytest.raises(SystemExit):  # argparse prints the usage and the bad item
        build_parser().parse_args(["train", "--out", str(tmp_path), "--batch", "t2i:32"])
    with pytest.raises(ValueError, match=r"sizes ≥ 0 \(0 or missing: skip\).*'paint': 4"):
        train_configs(build_parser().parse_args(["train", "--out", str(tmp_path), "--batch", "paint=4"]))
    with pytest.raises(ValueError, match=r"sizes ≥ 0 \(0 or missing: skip\).*'t2i': -1"):
        TrainConfig(batch={"t2i": -1})
    with pytest.raises(ValueError, match=r"sizes ≥ 0 \(0 or missing: skip\)"):
        TrainConfig(batch={"t2i": 0})  # nothing left to train
    assert TrainConfig(batch={"t2i": 4, "qa": 2}).task_batches() == {"t2i": 4, "qa": 2}


def test_edit_caption_is_trained_only_when_given_a_size_so_earlier_commands_replay(tmp_path):
    assert TrainConfig().batch["edit_caption"] == 0 and "edit_caption" not in TrainConfig().task_batches()
    six = ["train", "--out", str(tmp_path), "--batch", "t2i=48,caption=12,qa=24,edit=216,t2v=80,video_qa=32"]
    assert list(train_configs(build_parser().parse_args(six))[1].task_batches()) == list(TrainConfig.tasks[:6])
    _, cfg = train_configs(build_parser().parse_args([*six[:-1], six[-1] + ",edit_caption=96"]))
    assert cfg.task_batches()["edit_caption"] == 96 and list(cfg.task_batches())[:6] == list(TrainConfig.tasks[:6])


def test_edit_change_weight_flag_reaches_the_recipe_and_must_not_be_negative(tmp_path):
    argv = ["train", "--out", str(tmp_path), "--edit-change-weight", "3"]
    assert train_configs(build_parser().parse_args(argv))[1].edit_change_weight == 3.0
    assert TrainConfig().edit_change_weight == 0.0  # the shipped model's runs trained on the plain MSE
    with pytest.raises(ValueError, match=r"≥ 0 \(0: plain MSE\); got -1"):
        TrainConfig(edit_change_weight=-1.0)


def test_time_shift_flag_reaches_the_recipe_and_must_be_positive(tmp_path):
    argv = ["train", "--out", str(tmp_path), "--time-shift", "3"]
    assert train_configs(build_parser().parse_args(argv))[1].time_shift == 3.0
    assert TrainConfig().time_shift is None  # the model's own shift: earlier commands keep their meaning
    with pytest.raises(ValueError, match=r"> 0 \(1: no shift\).*got 0"):
        TrainConfig(time_shift=0.0)


def test_edit_change_weights_mark_only_what_the_edit_changed():
    source = torch.randn(2, 4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    target = source.clone()
    std = source.std()
    target[0, 2, 0, 1:3, 5:7] += 2 * CHANGE_THRESHOLD * std  # one channel of a 2×2 patch changes
    target[1, :, 0, 4, 4] += CHANGE_THRESHOLD * std / 2  # a small change in every channel at one position
    w = edit_change_weights(source, target, 3.0)
    assert w.shape == (2, 1, 1, 8, 8)
    assert (w[0, 0, 0, 1:3, 5:7] == 4.0).all() and w[0].sum() == 64 + 4 * 3
    assert (w[1] == 1.0).all()


@pytest.fixture(scope="module")
def data(tiny_pipeline) -> LatentCache:
    """A small latent set encoded once by the tiny pipeline's VAE, for the tests that build batches from it."""
    return held_out_set(tiny_pipeline.model, seed=3, images=4, videos=2)


def test_weighting_an_edit_batch_by_change_reweights_the_same_draws(tiny_pipeline, data):
    model, tok = tiny_pipeline.model, tiny_pipeline.tokenizer

    def edit_loss(weight: float) -> float:
        rng = np.random.default_rng(0)
        with torch.no_grad():
            return task_losses(model, "edit", 4, data, tok, rng, 0.0, model.config, model.device, 0.0, weight)[
                "flow"
            ].item()

    plain, weighted = edit_loss(0.0), edit_loss(3.0)
    rng = np.random.default_rng(0)
    _, clean, target = make_batch("edit", 4, data, tok, rng, 0.0, model.config)
    assert edit_change_weights(clean[0], target, 3.0).max() == 4.0  # these edits change something
    assert weighted != pytest.approx(plain, rel=1e-4)  # the same draws, reweighted
    assert edit_loss(0.0) == plain  # the same draws again: only the weights differed


def test_uniform_flow_weights_give_the_plain_mse(tiny_pipeline, data):
    model, tok = tiny_pipeline.model, tiny_pipeline.tokenizer
    rng = np.random.default_rng(1)
    batch, clean, target = make_batch("t2i", 4, data, tok, rng, 0.0, model.config)
    with torch.no_grad():
        plain = model(batch, clean, target, torch.Generator().manual_seed(5))["flow"]
        uniform = model(batch, clean, target, torch.Generator().manual_seed(5), flow_weights=torch.full((1,), 7.0))
    assert uniform["flow"].item() == pytest.approx(plain.item(), rel=1e-5)


def test_a_training_time_shift_replaces_the_models_for_images_and_videos(tiny_pipeline, data, monkeypatch):
    model, tok = tiny_pipeline.model, tiny_pipeline.tokenizer
    drawn: list[float] = []

    def spy(batch: int, shift: float, generator: torch.Generator | None = None) -> torch.Tensor:
        drawn.append(shift)
        return sample_train_time(batch, shift, generator)

    monkeypatch.setattr("tuna_core.model.tuna.sample_train_time", spy)
    for task in ("t2i", "t2v"):
        _, _, target = make_batch(task, 2, data, tok, np.random.default_rng(0), 0.0, model.config)
        losses = {}
        for shift in (None, 3.0):
            with torch.no_grad():
                rng = np.random.default_rng(0)
                losses[shift] = task_losses(
                    model, task, 2, data, tok, rng, 0.0, model.config, model.device, 0.0, 0.0, shift
                )
        assert drawn[-2:] == [model.shift_for(target.shape[2:]), 3.0]
        assert losses[3.0]["flow"].item() != pytest.approx(losses[None]["flow"].item(), rel=1e-4)  # other t, same draws
    assert drawn[0] != drawn[2]  # the model's own shift grows with a video's token count; the override does not


def test_a_follow_up_batch_supervises_every_answer_of_every_chat(tiny_pipeline, data):
    model, tok = tiny_pipeline.model, tiny_pipeline.tokenizer
    for task, size in (("qa", 4), ("video_qa", 2)):
        for follow_ups, answers in ((0.0, {1}), (1.0, {2, 3})):
            rng = np.random.default_rng(0)
            batch, clean, _ = make_batch(task, size, data, tok, rng, 0.0, model.config, follow_ups)
            assert set((batch.labels == tok.special.eos).sum(1).tolist()) <= answers
            assert len(clean) == 1  # still one image or video per chat


def test_an_edit_caption_batch_asks_for_the_caption_of_the_edits_result_about_its_source(tiny_pipeline, data):
    tok = tiny_pipeline.tokenizer
    batch, clean, target = make_batch("edit_caption", 4, data, tok, np.random.default_rng(0), 0.0, tiny_pipeline.config)
    idx = np.random.default_rng(0).integers(len(data.edit_targets), size=4)  # the batch's draw
    assert target is None and torch.equal(clean[0], data.images[idx].float())  # the edit's source, no generation
    for row, i in enumerate(idx):
        instruction, result = data.edits[i]
        ids, labels = batch.ids[row].tolist(), batch.labels[row].tolist()
        answer = [t for t in labels if t != -100]
        assert tok.decode(answer) == caption(result) and answer[-1] == tok.special.eos
        question = tok.encode(edit_caption_question(instruction))
        assert any(ids[k : k + len(question)] == question for k in range(len(ids)))


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="paint"):
        TrainConfig(tasks=("paint",)).task_batches()


def decoupled_model(tokenizer) -> TunaModel:
    cfg = ModelConfig.tiny()
    cfg = dataclasses.replace(cfg, representation="decoupled", llm={**cfg.llm, "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(0)
    return TunaModel(cfg)


def test_decoupled_generation_bypasses_the_representation_encoder(tiny_pipeline):
    model = decoupled_model(tiny_pipeline.tokenizer)
    for p in model.flow_head.parameters():
        torch.nn.init.normal_(p, std=0.02)
    sp = tiny_pipeline.tokenizer.special
    batch = SequenceBatch.from_layouts([generation_layout(sp, [20], 64)])
    model(batch, [], torch.randn(1, 16, 1, 16, 16), torch.Generator().manual_seed(0))["flow"].backward()
    assert model.generation_visual is model.latent_tokens
    assert all(p.grad is None for p in model.rep_encoder.parameters())
    assert model.latent_tokens.connector.fc1.weight.grad.abs().sum() > 0
    assert tiny_pipeline.model.generation_visual is tiny_pipeline.model.visual  # TUNA shares one encoder


def test_decoupled_checkpoint_round_trips(tiny_pipeline, tmp_path):
    model = decoupled_model(tiny_pipeline.tokenizer)
    save_pretrained(model, tiny_pipeline.tokenizer, tmp_path / "decoupled")
    loaded, _ = load_model(tmp_path / "decoupled")
    assert loaded.config.representation == "decoupled"
    assert torch.equal(loaded.latent_tokens.connector.fc2.weight, model.latent_tokens.connector.fc2.weight)


SMALL_RECIPE = {
    "cache_images": 48,
    "cache_edits": 16,
    "cache_videos": 8,
    "steps": 3,
    "warmup_steps": 1,
    "checkpoint_every": 1,
    "log_every": 1,
    "batch": {"t2i": 2, "caption": 1, "qa": 2, "edit": 2, "t2v": 1, "video_qa": 1},
}


@pytest.fixture(scope="module")
def small_recipe() -> TrainConfig:
    return TrainConfig(**SMALL_RECIPE)


def test_the_cache_holds_each_seeded_scene_at_its_index(tmp_path, small_recipe):
    """Scenes are rendered in worker processes; each latent must still be its own index's scene."""
    torch.manual_seed(0)
    vae = LatentVAE(AutoencoderKLWan(**ModelConfig.tiny().vae).eval())
    cache = build_cache(vae, small_recipe, tmp_path)
    seed = small_recipe.seed
    with torch.no_grad():
        for kind, latents, i in (
            ("images", cache.images, 37),
            ("edit_targets", cache.edit_targets, 5),
            ("videos", cache.videos, 6),
        ):
            alone = vae.encode(to_pixels(render_cached(kind, seed, i)[None])).half()[0]
            assert torch.allclose(latents[i].float(), alone.float(), atol=1e-2), kind
            assert not torch.allclose(latents[i - 1].float(), alone.float(), atol=1e-2), kind
    assert cache.edits[5] == edit_of(seed, 5)
    written = {f: f.stat().st_mtime_ns for f in tmp_path.glob("*.safetensors")}
    reloaded = build_cache(vae, small_recipe, tmp_path)  # every chunk is on disk now: loaded, not re-rendered
    assert {f: f.stat().st_mtime_ns for f in tmp_path.glob("*.safetensors")} == written
    assert torch.equal(reloaded.videos, cache.videos)


def test_resumed_training_matches_an_uninterrupted_run(tmp_path, small_recipe):
    torch.manual_seed(0)
    config = ModelConfig.tiny()
    vae = AutoencoderKLWan(**config.vae).eval()
    cache = tmp_path / "cache"  # shared: both runs train on the same latents

    straight = train_joint(config, small_recipe, tmp_path / "straight", vae, cache_dir=cache)
    train_joint(config, dataclasses.replace(small_recipe, steps=2), tmp_path / "resumed", vae, cache_dir=cache)
    resumed = train_joint(config, small_recipe, tmp_path / "resumed", vae, cache_dir=cache)

    a, b = load_file(str(straight / "tuna.safetensors")), load_file(str(resumed / "tuna.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    logs = [(tmp_path / run / "log.jsonl").read_text().splitlines() for run in ("straight", "resumed")]
    assert len(logs[0]) == len(logs[1]) == 3
    assert all(json.loads(line)["s_per_step"] > 0 for line in logs[0])  # what a GPU script sizes its run by
    assert (tmp_path / "resumed" / "loss.png").exists()


def test_accelerate_launch_trains_data_parallel_each_process_on_its_own_samples(tmp_path):
    """The multi-GPU launch, `accelerate launch --multi_gpu` (here on 2 CPU processes over gloo, which
    ACCELERATE_USE_CPU=1 asks for; on GPUs NCCL): the main process alone logs and saves, and the second process's
    samples count, so 2 processes end on other weights than 1 with the same seed and recipe (two processes
    drawing the same samples, or two unconnected single-process runs, would not)."""
    program = tmp_path / "train.py"
    program.write_text(
        "import sys\nfrom pathlib import Path\nimport torch\nfrom diffusers import AutoencoderKLWan\n"
        "from tuna_core.config import ModelConfig, TrainConfig\nfrom tuna_core.train.joint import train_joint\n"
        "if __name__ == '__main__':  # the cache renders scenes in worker processes that import this file\n"
        "    torch.manual_seed(0)\n    config = ModelConfig.tiny()\n    vae = AutoencoderKLWan(**config.vae).eval()\n"
        f"    train_joint(config, TrainConfig(**{ {**SMALL_RECIPE, 'steps': 2}!r}), Path(sys.argv[1]), vae,"
        " cache_dir=Path(sys.argv[2]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    weights = {}
    for processes, mode in ((1, "--cpu"), (2, "--multi_gpu")):
        out = tmp_path / f"run{processes}"
        launch = [sys.executable, "-m", "accelerate.commands.launch", mode, "--num_machines", "1"]
        launch += ["--num_processes", str(processes), "--mixed_precision", "no", "--dynamo_backend", "no"]
        done = subprocess.run(
            [*launch, str(program), str(out), str(tmp_path / "cache")], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert len((out / "log.jsonl").read_text().splitlines()) == 2
        weights[processes] = load_file(str(out / "latest" / "tuna.safetensors"))
    assert weights[1].keys() == weights[2].keys()
    assert max((weights[1][k].float() - weights[2][k].float()).abs().max().item() for k in weights[1]) > 1e-5


def a_checkpoint_on(vae: AutoencoderKLWan, folder, seed: int) -> TunaModel:
    """A tiny model with its own random weights around `vae`, saved to `folder`."""
    tok = TunaTokenizer.word_level(vocabulary())
    config = ModelConfig.tiny()
    torch.manual_seed(seed)
    model = TunaModel(dataclasses.replace(config, llm={**config.llm, "vocab_size": tok.vocab_size}))
    model.vae.vae.load_state_dict(vae.state_dict())
    for p in model.flow_head.parameters():  # the zero-initialised layers too, so a copy is visible
        torch.nn.init.normal_(p, std=0.02)
    save_pretrained(model, tok, folder)
    return model


def test_the_ema_moves_with_the_weights_it_averages():
    """Accelerate puts the model on the GPU after the EMA is made; an average left on the CPU would
    fail its first update there. (The meta device stands in for a GPU.)"""
    ema = EMA({"w": torch.zeros(2, 3)}, decay=0.5)
    with pytest.raises(RuntimeError):
        ema.update({"w": torch.ones(2, 3, device="meta")}, step=100)
    ema.to(torch.device("meta"))
    ema.update({"w": torch.ones(2, 3, device="meta")}, step=100)
    assert ema.shadow["w"].device.type == "meta"


def test_a_run_started_from_a_checkpoint_starts_from_its_weights(tmp_path, small_recipe):
    torch.manual_seed(0)
    config = ModelConfig.tiny()
    vae = AutoencoderKLWan(**config.vae).eval()
    source = a_checkpoint_on(vae, tmp_path / "source", seed=1)
    frozen = dataclasses.replace(small_recipe, steps=1, lr=0.0)  # a step that moves nothing: the run keeps them

    out = train_joint(config, frozen, tmp_path / "run", vae, cache_dir=tmp_path / "cache", init=tmp_path / "source")

    loaded, _ = load_model(out)
    expected = source.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_a_checkpoint_with_another_vae_is_refused(tmp_path, small_recipe):
    config = ModelConfig.tiny()
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**config.vae).eval()
    torch.manual_seed(1)
    a_checkpoint_on(AutoencoderKLWan(**config.vae), tmp_path / "source", seed=1)
    with pytest.raises(ValueError, match="VAE differs"):
        train_joint(config, small_recipe, tmp_path / "run", vae, cache_dir=tmp_path / "cache", init=tmp_path / "source")


@pytest.mark.parametrize(("flush", "survivors"), [(True, 0), (False, 4_000_000)])
def test_a_training_process_flushes_denormals_on_every_cpu_thread(flush, survivors):
    program = (
        "from tuna_core.train.common import flush_denormals\n"
        f"if {flush}: flush_denormals()\n"
        "import torch\n"
        "tiny = torch.full((4_000_000,), 1e-39)  # below float32's smallest normal number\n"
        "print(int((tiny * 1.0).count_nonzero()))  # a product big enough to run on the thread pool\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=ROOT)
    assert int(out.stdout) == survivors


def test_mixed_precision_is_one_of_three():
    with pytest.raises(ValueError, match="fp16"):
        TrainConfig(mixed_precision="fp16")


def scene_with_a_square() -> torch.Tensor:
    """A gray (B=1, 3, T=1, 16, 16) image with a red 4×4 square: 16 object pixels, 240 background."""
    x = torch.zeros(1, 3, 1, 16, 16)
    x[:, :, :, 6:10, 6:10] = torch.tensor([0.8, -0.8, -0.8]).view(1, 3, 1, 1, 1)
    return x


def test_object_mask_finds_the_shape_and_only_the_shape():
    mask = object_mask(scene_with_a_square())
    assert mask.shape == (1, 1, 1, 16, 16)
    assert mask.sum() == 16 and mask[..., 6:10, 6:10].all()


def test_object_weighted_l1_costs_a_uniform_error_its_size():
    x = scene_with_a_square()
    assert object_weighted_l1(x + 0.3, x, 10.0).item() == pytest.approx(0.3)


def test_object_weighted_l1_makes_an_error_on_the_shape_cost_more():
    x = scene_with_a_square()
    on_shape, on_background = x.clone(), x.clone()
    on_shape[..., 6:10, 6:10] += 0.5
    on_background[..., 0:4, 0:4] += 0.5  # the same number of pixels, same error
    weighted = object_weighted_l1(on_shape, x, 10.0) / object_weighted_l1(on_background, x, 10.0)
    assert weighted.item() == pytest.approx(11.0)
    unweighted = object_weighted_l1(on_shape, x, 0.0) / object_weighted_l1(on_background, x, 0.0)
    assert unweighted.item() == pytest.approx(1.0)


def test_the_round_trip_bound_reads_renders_exactly_and_blank_images_never():
    rng = np.random.default_rng(3)
    scenes = [sample_scene(rng) for _ in range(8)]
    renders = np.stack([render_image(s) for s in scenes])
    assert read_exactly(scenes, renders) == 1.0
    assert read_exactly(scenes, np.zeros_like(renders)) == 0.0
    assert read_exactly(scenes, renders[::-1]) < 1.0  # a right-looking image of the wrong scene does not count


def test_frames_and_pixels_convert_back_and_forth_exactly():
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 3, 8, 8, 3), dtype=np.uint8)  # (B, T, H, W, 3)
    pixels = to_pixels(frames)
    assert pixels.shape == (2, 3, 3, 8, 8) and pixels.min() >= -1.0 and pixels.max() <= 1.0
    assert np.array_equal(to_frames(pixels), frames)


def test_stage_one_reports_image_and_video_round_trips_and_an_untrained_vae_passes_neither():
    torch.manual_seed(0)
    errors = held_out_errors(AutoencoderKLWan(**ModelConfig.tiny().vae), seed=0)
    assert set(errors) == {f"eval/{k}" for k in ("l1", "object_l1", "read_exactly", "video_l1", "video_read")}
    assert errors["eval/read_exactly"] == errors["eval/video_read"] == 0.0
    assert errors["eval/video_l1"] > 0.1 and errors["eval/object_l1"] > errors["eval/l1"]


def test_keyframe_video_path_keeps_images_exactly_and_makes_video_latents_keyframe_latents():
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**ModelConfig.tiny().vae).eval()
    rng = np.random.default_rng(0)
    video = to_pixels(render_video(sample_scene(rng, video=True))[None])  # (1, 3, 17, 64, 64)
    with torch.no_grad():
        image_before = vae.decode(vae.encode(video[:, :, :1]).latent_dist.mode()).sample
        keyframe_video_path(vae)
        image_after = vae.decode(vae.encode(video[:, :, :1]).latent_dist.mode()).sample
        latents = vae.encode(video).latent_dist.mode()  # (1, C, 5, 16, 16)
        keyframes = vae.encode(video[0, :, ::4].transpose(0, 1)[:, :, None]).latent_dist.mode()  # frames 0, 4, …, 16
        decoded = vae.decode(latents).sample
        held = vae.decode(keyframes).sample  # each keyframe decoded as an image
    assert torch.equal(image_before, image_after)
    torch.testing.assert_close(latents[0].transpose(0, 1), keyframes[:, :, 0], atol=1e-4, rtol=1e-4)
    for k in range(1, 5):  # latent frame k is shown for frames 4k-3 … 4k
        for frame in range(4 * k - 3, 4 * k + 1):
            torch.testing.assert_close(decoded[0, :, frame], held[k, :, 0], atol=1e-4, rtol=1e-4)
