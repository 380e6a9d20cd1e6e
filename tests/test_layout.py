"""Sequence layouts and the omni attention mask (DESIGN.md, "Sequences")."""

import torch

from tuna_core.layout import (
    SpecialIds,
    batch_mask,
    editing_layout,
    generation_layout,
    omni_mask,
    prefix_layout,
    rope_ids_3d,
    span_step_mask,
    understanding_layout,
)

SP = SpecialIds(pad=0, bos=1, eos=2, boi=3, eoi=4, img=5, time=6)
NAMES = {0: "pad", 1: "bos", 2: "eos", 3: "boi", 4: "eoi", 5: "img", 6: "time"}


def spell(ids: list[int]) -> str:
    return " ".join(NAMES.get(i, f"t{i}") for i in ids)


def test_generation_layout_reads_bos_text_boi_time_img_eoi():
    lay = generation_layout(SP, [10, 11], 3)
    assert spell(lay.ids) == "bos t10 t11 boi time img img img eoi"
    (span,) = lay.spans
    assert (span.start, span.length, span.num_visual, span.noisy) == (4, 4, 3, True)
    assert span.visual_start == 5


def test_understanding_layout_supervises_answer_and_eos_only():
    lay = understanding_layout(SP, [2], [20, 21], [30])
    assert spell(lay.ids) == "bos boi img img eoi t20 t21 t30 eos"
    targets = [lay.ids[p + 1] for p in lay.loss_positions]
    assert targets == [30, SP.eos]


def test_editing_layout_has_clean_source_then_noisy_target():
    lay = editing_layout(SP, 2, [40], 2)
    assert spell(lay.ids) == "bos boi img img eoi t40 boi time img img eoi"
    assert [s.noisy for s in lay.spans] == [False, True]


def test_image_span_is_bidirectional_and_text_is_causal():
    lay = generation_layout(SP, [10, 11], 3)
    mask = omni_mask(len(lay), [(s.start, s.length) for s in lay.spans])
    first_img, last_img = 5, 7
    assert mask[first_img, last_img]  # sees a later token of its own span
    assert mask[4, last_img]  # the time token sees the whole image
    assert not mask[1, 2]  # text never sees the future
    assert not mask[3, 4]  # [boi] is outside the span: causal
    assert mask[last_img + 1, :].all()  # [eoi] sees everything before it
    assert not mask[last_img, last_img + 1]  # the span does not see [eoi]


def test_two_image_spans_do_not_see_each_other_ahead():
    lay = editing_layout(SP, 2, [40], 2)
    mask = omni_mask(len(lay), [(s.start, s.length) for s in lay.spans])
    src, tgt = lay.spans
    assert not mask[src.start, tgt.start]  # source cannot look at the target
    assert mask[tgt.start, src.start]  # target sees the source


def test_omni_mask_is_causal_without_spans():
    assert torch.equal(omni_mask(5, []), torch.tril(torch.ones(5, 5, dtype=torch.bool)))


def test_left_padding_aligns_ends_and_masks_pad_keys():
    short, long = generation_layout(SP, [], 2), generation_layout(SP, [10, 11, 12], 2)
    mask, pos, offsets = batch_mask([short, long], left_pad=True)
    assert offsets == [3, 0]
    assert pos[0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5]
    assert not mask[0, 0, 5, :3].any()  # real tokens never attend to padding
    assert all(mask[0, 0, i, i] for i in range(3))  # a pad query sees itself (no empty softmax row)


def test_prefix_layout_stops_before_the_time_token():
    lay = editing_layout(SP, 2, [40], 3)
    prefix = prefix_layout(lay)
    assert spell(prefix.ids) == "bos boi img img eoi t40 boi"
    assert len(prefix.spans) == 1 and not prefix.spans[0].noisy


def test_span_step_mask_sees_valid_prefix_and_whole_span():
    valid = torch.tensor([[False, True, True]])
    mask = span_step_mask(valid, 2)
    assert mask.shape == (1, 1, 2, 5)
    assert mask[0, 0].tolist() == [[False, True, True, True, True]] * 2


def test_span_step_mask_stays_on_the_prefix_device():
    # The KV cache's key mask lives on the GPU when serving; a CPU span would fail the concat.
    valid = torch.ones(2, 3, dtype=torch.bool, device="meta")
    assert span_step_mask(valid, 4).device.type == "meta"


def test_rope_ids_are_frame_major_raster_order():
    ids = rope_ids_3d(2, 2, 3)
    assert ids.shape == (12, 3)
    assert ids[0].tolist() == [0, 0, 0] and ids[1].tolist() == [0, 0, 1] and ids[3].tolist() == [0, 1, 0]
    assert ids[6].tolist() == [1, 0, 0]
