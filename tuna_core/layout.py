"""Sequence layouts, the omni attention mask and 3D RoPE ids — pure functions of small inputs.

A layout is a token-id list in which visual tokens and the time token are placeholders, plus
the spans that say where each image lives. The model splices visual features into the
placeholders; the mask is a function of the spans alone:

    generation     [bos] text [boi] [time] img… [eoi]
    understanding  [bos] [boi] img… [eoi] question answer [eos]
    editing        [bos] [boi] src… [eoi] instruction [boi] [time] tgt… [eoi]

Attention is causal except that every token of an image span (the time token included) sees
every other token of the same span ("omni" attention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SpecialIds:
    """Token ids of the special tokens (see ``config.SPECIAL_TOKENS``)."""

    pad: int
    bos: int
    eos: int
    boi: int
    eoi: int
    img: int
    time: int


@dataclass(frozen=True)
class ImageSpan:
    """A bidirectional span: `start` is the first token after [boi] (the time token if noisy)."""

    start: int
    length: int
    num_visual: int  # visual tokens in the span (length minus the time token, if any)
    noisy: bool  # True: a generation target fed x_t with a leading time token

    @property
    def visual_start(self) -> int:
        return self.start + (1 if self.noisy else 0)

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass
class Layout:
    """One sequence: ids with placeholders, its image spans and the positions that carry text loss."""

    ids: list[int] = field(default_factory=list)
    spans: list[ImageSpan] = field(default_factory=list)
    loss_positions: list[int] = field(default_factory=list)  # positions whose *next* token is a target

    def __len__(self) -> int:
        return len(self.ids)

    def add_text(self, token_ids: Sequence[int], *, supervised: bool = False) -> None:
        """Append text; when supervised, each token is predicted from the position before it."""
        if supervised:
            self.loss_positions.extend(range(len(self.ids) - 1, len(self.ids) - 1 + len(token_ids)))
        self.ids.extend(token_ids)

    def add_image(self, special: SpecialIds, num_visual: int, *, noisy: bool) -> None:
        """Append [boi] ([time]) img… [eoi]."""
        self.ids.append(special.boi)
        start = len(self.ids)
        if noisy:
            self.ids.append(special.time)
        self.ids.extend([special.img] * num_visual)
        self.spans.append(ImageSpan(start, len(self.ids) - start, num_visual, noisy))
        self.ids.append(special.eoi)


def generation_layout(special: SpecialIds, text_ids: Sequence[int], num_visual: int) -> Layout:
    """``[bos] text [boi] [time] img… [eoi]`` (an empty `text_ids` is the unconditional branch)."""
    layout = Layout()
    layout.add_text([special.bos, *text_ids])
    layout.add_image(special, num_visual, noisy=True)
    return layout


def understanding_layout(
    special: SpecialIds,
    num_visual: Sequence[int],
    question_ids: Sequence[int],
    answer_ids: Sequence[int] | None = None,
) -> Layout:
    """``[bos] ([boi] img… [eoi])* question answer [eos]``; the answer and [eos] carry the loss.

    With `answer_ids` None the layout ends after the question, ready for decoding.
    """
    return chat_layout(special, num_visual, [(question_ids, answer_ids)])


def chat_layout(
    special: SpecialIds,
    num_visual: Sequence[int],
    turns: Sequence[tuple[Sequence[int], Sequence[int] | None]],
) -> Layout:
    """Images first, then ``question answer [eos]`` per turn; a last turn without answer is open.

    Answers (with their [eos]) are supervised: in training that is the text loss, and at
    inference the flag is unused.
    """
    layout = Layout()
    layout.add_text([special.bos])
    for n in num_visual:
        layout.add_image(special, n, noisy=False)
    for question, answer in turns:
        layout.add_text(question)
        if answer is not None:
            layout.add_text([*answer, special.eos], supervised=True)
    return layout


def editing_layout(special: SpecialIds, num_source: int, instruction_ids: Sequence[int], num_target: int) -> Layout:
    """``[bos] [boi] src… [eoi] instruction [boi] [time] tgt… [eoi]``."""
    layout = Layout()
    layout.add_text([special.bos])
    layout.add_image(special, num_source, noisy=False)
    layout.add_text(instruction_ids)
    layout.add_image(special, num_target, noisy=True)
    return layout


def prefix_layout(layout: Layout) -> Layout:
    """The part of a generation/editing layout before its noisy span: what the sampler caches.

    Everything before the target span's time token is computed once; the span itself is
    recomputed at every denoising step. Raises if the layout has no noisy span.
    """
    if not layout.spans or not layout.spans[-1].noisy:
        raise ValueError("layout has no noisy image span to generate; use a generation or editing layout")
    start = layout.spans[-1].start
    return Layout(ids=layout.ids[:start], spans=[s for s in layout.spans if s.end <= start])


def omni_mask(length: int, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """(L, L) boolean mask, True = may attend: causal, or both tokens in the same span.

    `spans` are (start, length) pairs in sequence coordinates.
    """
    idx = torch.arange(length)
    mask = idx[:, None] >= idx[None, :]  # causal
    span_id = torch.full((length,), -1)
    for i, (start, n) in enumerate(spans):
        span_id[start : start + n] = i
    same_span = (span_id[:, None] == span_id[None, :]) & (span_id[:, None] >= 0)
    return mask | same_span


def batch_mask(
    layouts: Sequence[Layout], *, left_pad: bool = False, length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Masks and position ids for a padded batch of layouts.

    Returns ``mask`` (B, 1, L, L) boolean, ``position_ids`` (B, L) and each row's offset (the pad
    count before its first token). Padding keys are masked out; a padding query sees only itself,
    so no softmax row is empty. Left padding lines up the *ends* of sequences, which the sampler
    needs to append one shared image span to prefixes of different lengths.
    """
    length = length or max(len(lay) for lay in layouts)
    masks = torch.zeros(len(layouts), 1, length, length, dtype=torch.bool)
    positions = torch.zeros(len(layouts), length, dtype=torch.long)
    offsets = []
    for row, lay in enumerate(layouts):
        n = len(lay)
        off = length - n if left_pad else 0
        masks[row, 0, off : off + n, off : off + n] = omni_mask(n, [(s.start, s.length) for s in lay.spans])
        positions[row, off : off + n] = torch.arange(n)
        offsets.append(off)
    pad_diag = ~masks[:, 0].any(dim=-1)  # rows with no visible key: padding queries
    masks[:, 0] |= torch.diag_embed(pad_diag)
    return masks, positions, offsets


def span_step_mask(prefix_mask_keys: torch.Tensor, span_length: int) -> torch.Tensor:
    """Mask for one denoising step: span queries see every valid prefix key and the whole span.

    `prefix_mask_keys` (B, P) says which cached prefix positions are real tokens (not padding).
    Returns (B, 1, S, P + S).
    """
    b, _ = prefix_mask_keys.shape
    span = torch.ones(b, span_length, dtype=torch.bool, device=prefix_mask_keys.device)
    keys = torch.cat([prefix_mask_keys, span], dim=1)
    return keys[:, None, None, :].expand(b, 1, span_length, keys.shape[1]).clone()


def rope_ids_3d(frames: int, height: int, width: int) -> torch.Tensor:
    """(frames·height·width, 3) integer (t, y, x) coordinates in raster order, frame-major."""
    t, y, x = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([t.flatten(), y.flatten(), x.flatten()], dim=-1)
