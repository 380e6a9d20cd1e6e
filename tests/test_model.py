"""The model's architecture: parts, shapes, presets and the cached generation path."""

import dataclasses

import pytest
import torch
from diffusers import AutoencoderKLWan
from transformers import Qwen2ForCausalLM, SiglipVisionModel

from tuna_core.checkpoint import parameter_counts
from tuna_core.config import ModelConfig
from tuna_core.layout import generation_layout, omni_mask, prefix_layout, understanding_layout
from tuna_core.model import SequenceBatch, TunaModel
from tuna_core.model.flow_head import FlowHead
from tuna_core.model.visual import patchify, unpatchify


@pytest.fixture(scope="module")
def model(tiny_pipeline) -> TunaModel:
    return tiny_pipeline.model


def test_parts_are_the_libraries_real_classes(model):
    assert isinstance(model.vae.vae, AutoencoderKLWan)
    assert isinstance(model.rep_encoder.tower, SiglipVisionModel)
    assert isinstance(model.llm, Qwen2ForCausalLM)


def test_patch_embedding_is_a_2x2_conv_over_latent_channels(model):
    conv = model.rep_encoder.tower.get_input_embeddings()
    assert conv.kernel_size == (2, 2) and conv.stride == (2, 2)
    assert conv.in_channels == model.config.latent_channels


def test_full_size_patch_embedding_is_1x1_as_in_the_paper():
    cfg = ModelConfig.tuna_1_5b()
    assert cfg.latent_patch == 1 and cfg.token_stride == cfg.spatial_compression == 16


def test_representation_tower_has_no_pooling_head(model):
    assert not model.rep_encoder.tower.config.vision_use_head


def test_a_64px_image_is_a_16x16_latent_and_64_visual_tokens_in_llm_width(model):
    pixels = torch.rand(2, 3, 1, 64, 64) * 2 - 1
    latents = model.vae.encode(pixels)
    assert latents.shape == (2, 16, 1, 16, 16)
    tokens = model.visual(latents)
    assert tokens.shape == (2, 64, model.config.llm_hidden_size)
    assert model.config.num_visual_tokens(1, 64, 64) == 64


def test_a_17_frame_video_is_5_latent_frames_of_64_tokens(model):
    assert model.config.latent_grid(17, 64, 64) == (5, 16, 16)
    assert model.config.token_grid(17, 64, 64) == (5, 8, 8)
    assert model.config.latent_token_grid((5, 16, 16)) == (5, 8, 8) and model.config.latent_tokens((5, 16, 16)) == 320


def test_video_frames_fold_into_the_batch_and_concatenate(model):
    latents = torch.randn(1, 16, 5, 16, 16)
    per_frame = model.visual(latents.permute(2, 0, 1, 3, 4).reshape(5, 16, 1, 16, 16))  # (5, 64, D)
    whole = model.visual(latents)  # (1, 320, D)
    assert torch.allclose(whole[0], per_frame.reshape(320, -1), atol=1e-5)


def test_patchify_orders_tokens_like_the_representation_encoder():
    """Token k of `patchify` covers the same latent pixels as output k of a stride-p conv."""
    latents = torch.randn(2, 3, 2, 4, 6)
    tokens = patchify(latents, 2)
    assert tokens.shape == (2, 2 * 2 * 3, 3 * 4)
    conv = torch.nn.Conv2d(3, 5, kernel_size=2, stride=2)
    frames = latents.permute(0, 2, 1, 3, 4).reshape(4, 3, 4, 6)
    by_conv = conv(frames).flatten(2).transpose(1, 2).reshape(2, 12, 5)
    by_tokens = tokens @ conv.weight.reshape(5, -1).T + conv.bias
    assert torch.allclose(by_conv, by_tokens, atol=1e-5)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_unpatchify_inverts_patchify(p):
    latents = torch.randn(2, 16, 3, 8, 8)
    assert torch.equal(unpatchify(patchify(latents, p), p, (3, 8 // p, 8 // p)), latents)


def test_512px_full_size_image_is_1024_tokens():
    cfg = ModelConfig.tuna_1_5b()
    assert cfg.latent_grid(1, 512, 512) == (1, 32, 32)
    assert cfg.num_visual_tokens(1, 512, 512) == 1024
    assert cfg.latent_frames(49) == 13


def test_full_size_presets_have_paper_part_sizes():
    for preset, llm_b in (("tuna-1.5b", 1.5), ("tuna-7b", 7.6)):
        with torch.device("meta"):
            counts = parameter_counts(TunaModel(ModelConfig.preset(preset)))
        assert counts["llm"] / 1e9 == pytest.approx(llm_b, rel=0.05)
        assert counts["rep_encoder"] / 1e6 == pytest.approx(400, rel=0.05)  # so400m minus one layer
        assert counts["connector"] > 0 and counts["flow_head"] > 0
        assert counts["vae"] / 1e6 == pytest.approx(700, rel=0.2)  # Wan 2.2 TI2V VAE


def test_fresh_flow_head_predicts_zero_velocity():
    head = FlowHead(ModelConfig.tiny().head, llm_dim=32, latent_channels=16)
    v = head(torch.randn(2, 10, 32), torch.rand(2), torch.zeros(10, 3, dtype=torch.long))
    assert torch.count_nonzero(v) == 0


def test_generation_gradient_flows_through_the_representation_encoder(tiny_pipeline):
    model = TunaModel(dataclasses.replace(tiny_pipeline.config, llm={**tiny_pipeline.config.llm}))
    for p in model.flow_head.parameters():
        torch.nn.init.normal_(p, std=0.02)
    sp = tiny_pipeline.tokenizer.special
    batch = SequenceBatch.from_layouts([generation_layout(sp, [20, 21], 64), generation_layout(sp, [22], 64)])
    losses = model(batch, [], torch.randn(2, 16, 1, 16, 16), torch.Generator().manual_seed(0))
    losses["flow"].backward()
    grad = model.rep_encoder.tower.get_input_embeddings().weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_cached_denoise_step_equals_a_full_omni_masked_forward(model, tiny_pipeline):
    sp = tiny_pipeline.tokenizer.special
    layout = generation_layout(sp, [20, 21, 22], 64)
    x_t, t = torch.randn(1, 16, 1, 16, 16), torch.tensor([0.3])
    ctx = model.prefill([prefix_layout(layout)], [])
    cached = model.denoise(ctx, x_t, t)
    again = model.denoise(ctx, x_t, t)  # the cache is restored after each step

    batch = SequenceBatch.from_layouts([layout])
    x = model.embed(batch.ids, [model.visual(x_t)], batch.visual_positions, model.time_embed(t), batch.time_positions)
    mask = omni_mask(len(layout), [(s.start, s.length) for s in layout.spans])[None, None]
    hidden = model.llm.model(inputs_embeds=x, attention_mask=mask, position_ids=batch.position_ids).last_hidden_state
    full = model.velocity(hidden[:, batch.visual_positions[0][0]], t, (1, 16, 16))
    assert torch.allclose(cached, full, atol=1e-4)
    assert torch.equal(cached, again)


def test_left_padded_prefixes_give_the_same_velocity_as_alone(model, tiny_pipeline):
    sp = tiny_pipeline.tokenizer.special
    short, long = generation_layout(sp, [20], 64), generation_layout(sp, [20, 21, 22, 23], 64)
    x_t, t = torch.randn(1, 16, 1, 16, 16), torch.tensor([0.5])
    alone = model.denoise(model.prefill([prefix_layout(short)], []), x_t, t)
    padded = model.denoise(
        model.prefill([prefix_layout(long), prefix_layout(short)], []), x_t.repeat(2, 1, 1, 1, 1), t.repeat(2)
    )
    assert torch.allclose(padded[1:], alone, atol=1e-4)


def test_text_logprob_sums_the_log_likelihood_that_the_text_loss_averages(model, tiny_pipeline):
    sp = tiny_pipeline.tokenizer.special
    layouts = [understanding_layout(sp, [64], [30, 31], answer) for answer in ([20, 21, 22], [23])]
    latents = torch.randn(2, 16, 1, 16, 16)
    scores = model.text_logprob(layouts, [latents])  # answers of different lengths, batched
    for row, layout in enumerate(layouts):
        with torch.no_grad():
            loss = model(SequenceBatch.from_layouts([layout]), [latents[row : row + 1]])["text"]
        assert torch.allclose(scores[row], -loss * len(layout.loss_positions), atol=1e-4)


def test_says_is_true_exactly_when_greedy_decoding_writes_the_answer_and_stops(model, tiny_pipeline, monkeypatch):
    sp, latents, question = tiny_pipeline.tokenizer.special, torch.randn(1, 16, 1, 16, 16), [30, 31]

    def greedy(n: int) -> list[int]:  # n tokens by the KV-cached decoding the chat uses
        prompt = understanding_layout(sp, [64], question)
        cache, logits = model.start_decoding(prompt, [latents])
        tokens = [int(logits.argmax())]
        for position in range(len(prompt), len(prompt) + n - 1):
            tokens.append(int(model.next_logits(cache, torch.tensor([tokens[-1]]), position).argmax()))
        return tokens

    def says(*answers: list[int]) -> list[bool]:
        layouts = [understanding_layout(sp, [64], question, answer) for answer in answers]
        return model.says(layouts, [latents.expand(len(answers), -1, -1, -1, -1)]).tolist()

    written = greedy(4)
    prefixes = [written[:k] for k in range(4)]  # each is followed by [eos] in its layout
    assert says(*prefixes) == [written[k] == sp.eos for k in range(4)]
    logits_of = model.llm.lm_head.forward
    monkeypatch.setattr(
        model.llm.lm_head, "forward", lambda h: logits_of(h).index_fill(-1, torch.tensor([sp.eos]), 1e4)
    )
    assert greedy(1) == [sp.eos]  # now it stops at once: the empty answer is what it says, and nothing else
    assert says([], written[:1], [sp.bos]) == [True, False, False]
