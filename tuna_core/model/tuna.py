"""TUNA: one LLM decoder over one continuous visual representation.

``TunaModel.__init__`` reads as the architecture: Wan VAE → SigLIP tower (p×p latent patch
embedding, last layer dropped) → connector → Qwen2 decoder, plus a time embedder for the time
token and the flow-matching head. Training runs one homogeneous batch of layouts through
`forward`; generation uses `prefill` once and `denoise` per step, reusing the prefix KV cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from torch import nn
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

from tuna_core.config import ModelConfig
from tuna_core.layout import Layout, batch_mask, rope_ids_3d, span_step_mask
from tuna_core.model.flow_head import FlowHead, TimestepEmbedder
from tuna_core.model.visual import (
    Connector,
    LatentTokens,
    LatentVAE,
    RepresentationEncoder,
    VisualTokens,
    build_representation_encoder,
    unpatchify,
)
from tuna_core.sampler import resolution_shift, sample_train_time


@dataclass
class SequenceBatch:
    """A padded batch of layouts that share span structure (same task, same resolution).

    ``visual_positions[k]`` (B, n_k) holds the sequence positions of span k's visual tokens in
    each row; spans are numbered in layout order, and only the last may be noisy.
    """

    ids: torch.Tensor  # (B, L)
    mask: torch.Tensor  # (B, 1, L, L) bool
    position_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), -100 where no text loss
    visual_positions: list[torch.Tensor]
    time_positions: torch.Tensor | None  # (B,) the noisy span's time token, if any
    offsets: list[int]

    @classmethod
    def from_layouts(cls, layouts: list[Layout], *, left_pad: bool = False) -> SequenceBatch:
        first = layouts[0]
        for lay in layouts:
            shape = [(s.num_visual, s.noisy) for s in lay.spans]
            if shape != [(s.num_visual, s.noisy) for s in first.spans]:
                raise ValueError("a batch must share its span structure; group samples by task and size")
        mask, position_ids, offsets = batch_mask(layouts, left_pad=left_pad)
        b, length = position_ids.shape
        ids = torch.zeros((b, length), dtype=torch.long)  # padding ids are never attended to
        labels = torch.full((b, length), -100, dtype=torch.long)
        for row, (lay, off) in enumerate(zip(layouts, offsets, strict=True)):
            ids[row, off : off + len(lay)] = torch.tensor(lay.ids)
            for p in lay.loss_positions:
                labels[row, off + p] = lay.ids[p + 1]

        def positions(span_of: Callable[[Layout, int], torch.Tensor]) -> torch.Tensor:
            return torch.stack([span_of(lay, off) for lay, off in zip(layouts, offsets, strict=True)])

        visual_positions = [
            positions(lambda lay, off, k=k: off + lay.spans[k].visual_start + torch.arange(lay.spans[k].num_visual))
            for k in range(len(first.spans))
        ]
        noisy = first.spans and first.spans[-1].noisy
        time_positions = positions(lambda lay, off: torch.tensor(off + lay.spans[-1].start)) if noisy else None
        return cls(ids, mask, position_ids, labels, visual_positions, time_positions, offsets)

    def to(self, device: torch.device) -> SequenceBatch:
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device)
        moved["visual_positions"] = [p.to(device) for p in self.visual_positions]
        return SequenceBatch(**moved)


@dataclass
class GenerationContext:
    """The cached text prefix shared by every denoising step (one row per branch and sample)."""

    cache: DynamicCache
    key_valid: torch.Tensor  # (B, P) bool: real prefix tokens, False for left padding
    next_position: torch.Tensor  # (B,) position id of the first span token
    prefix_length: int  # P, padded


class TunaModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Unified visual representation: VAE encoder cascaded with the representation encoder.
        self.vae = LatentVAE(AutoencoderKLWan(**config.vae))
        self.rep_encoder = RepresentationEncoder(build_representation_encoder(config.rep_encoder))
        self.connector = Connector(config.rep_hidden_size, config.llm_hidden_size)
        self.visual = VisualTokens(self.rep_encoder, self.connector)
        # Only the decoupled ablation has a separate path for generation latents.
        self.latent_tokens = (
            LatentTokens(config.latent_channels, config.latent_patch, config.llm_hidden_size)
            if config.representation == "decoupled"
            else None
        )
        # The LLM decoder, its time token and the flow-matching head on its image-span states.
        self.llm = Qwen2ForCausalLM(Qwen2Config(**config.llm, attn_implementation="sdpa"))
        self.time_embed = TimestepEmbedder(config.llm_hidden_size, config.head.frequency_embedding_size)
        self.flow_head = FlowHead(config.head, config.llm_hidden_size, config.latent_channels * config.latent_patch**2)

    # -- parts ----------------------------------------------------------------------------------
    def parts(self) -> dict[str, nn.Module]:
        """The five parts DESIGN.md names, for parameter counts and per-part checkpoints."""
        return {
            "vae": self.vae.vae,
            "rep_encoder": self.rep_encoder.tower,
            "connector": self.connector,
            "llm": self.llm,
            "flow_head": nn.ModuleList([self.flow_head, self.time_embed]),
        } | ({"latent_tokens": self.latent_tokens} if self.latent_tokens is not None else {})

    @property
    def generation_visual(self) -> nn.Module:
        """What turns noisy generation latents into LLM tokens: the shared visual encoder (TUNA),
        or the decoupled ablation's own MLP. It runs at every denoising step."""
        return self.visual if self.latent_tokens is None else self.latent_tokens

    @property
    def device(self) -> torch.device:
        return self.connector.fc1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.connector.fc1.weight.dtype

    def shift_for(self, latent_grid: Sequence[int]) -> float:
        """The flow time shift for a (T, h, w) target latent: it grows with its token count."""
        cfg = self.config
        reference = cfg.num_visual_tokens(1, cfg.image_size, cfg.image_size)
        return resolution_shift(cfg.time_shift, cfg.latent_tokens(latent_grid), reference)

    # -- sequence assembly -------------------------------------------------------------------
    def embed(
        self,
        ids: torch.Tensor,
        visual: list[torch.Tensor],
        visual_positions: list[torch.Tensor],
        time_embeds: torch.Tensor | None = None,
        time_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with visual tokens and the time token spliced into their placeholders."""
        x = self.llm.get_input_embeddings()(ids)  # (B, L, D)
        for feats, pos in zip(visual, visual_positions, strict=True):
            x = x.scatter(1, pos[..., None].expand(-1, -1, x.shape[-1]), feats.to(x.dtype))
        if time_embeds is not None:
            x = x.scatter(1, time_positions[:, None, None].expand(-1, 1, x.shape[-1]), time_embeds[:, None].to(x.dtype))
        return x

    def velocity(self, hidden: torch.Tensor, t: torch.Tensor, latent_grid: Sequence[int]) -> torch.Tensor:
        """Flow head on the target span's hidden states (B, N, D) → latent velocity (B, C, T, h, w)."""
        grid = self.config.latent_token_grid(latent_grid)
        v = self.flow_head(hidden, t, rope_ids_3d(*grid).to(hidden.device))  # (B, N, C·p·p)
        return unpatchify(v, self.config.latent_patch, grid).float()

    # -- training ---------------------------------------------------------------------------------
    def forward(
        self,
        batch: SequenceBatch,
        clean: list[torch.Tensor],
        target: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        flow_weights: torch.Tensor | None = None,
        time_shift: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training forward: flow-matching MSE on the noisy span, next-token CE on supervised text.

        It is `forward` so that data-parallel and FSDP wrappers see the whole training step.

        `clean` holds latents (B, C, T, h, w) for each clean span, in layout order; `target` the
        clean latent x1 of the noisy span; `flow_weights` (broadcast to it) weight the flow MSE,
        divided by their mean so a uniform error e still costs e²; `time_shift` warps the draw of t
        (None: the model's shift for the target's size). Returns the losses that were computable,
        before the recipe's per-loss weights.
        """
        visual = [self.visual(lat) for lat in clean]
        time_embeds = t = x0 = None
        if target is not None:
            b = target.shape[0]
            shift = self.shift_for(target.shape[2:]) if time_shift is None else time_shift
            t = sample_train_time(b, shift, generator).to(target.device)
            x0 = torch.randn(target.shape, generator=generator).to(target.device)
            tt = t.view(b, 1, 1, 1, 1).to(target.dtype)
            visual.append(self.generation_visual(tt * target + (1 - tt) * x0))  # noisy x_t, same encoder in TUNA
            time_embeds = self.time_embed(t)
        x = self.embed(batch.ids, visual, batch.visual_positions, time_embeds, batch.time_positions)
        hidden = self.llm.model(
            inputs_embeds=x, attention_mask=batch.mask, position_ids=batch.position_ids
        ).last_hidden_state  # (B, L, D)

        losses: dict[str, torch.Tensor] = {}
        supervised = batch.labels != -100
        if supervised.any():
            logits = self.llm.lm_head(hidden[supervised])  # only where a token is predicted
            losses["text"] = F.cross_entropy(logits.float(), batch.labels[supervised])
        if target is not None:
            pos = batch.visual_positions[-1]
            span = hidden.gather(1, pos[..., None].expand(-1, -1, hidden.shape[-1]))
            v = self.velocity(span, t, tuple(target.shape[2:]))
            if flow_weights is None:
                losses["flow"] = F.mse_loss(v, (target - x0).float())
            else:
                err = (v - (target - x0).float()).square()
                w = flow_weights.float().expand_as(err)
                losses["flow"] = (err * w).mean() / w.mean()
        return losses

    # -- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def prefill(self, layouts: list[Layout], clean: list[torch.Tensor]) -> GenerationContext:
        """Run the text prefixes (left-padded to one length) once and keep their KV cache.

        `layouts` are prefix layouts: everything before the noisy span's time token.
        """
        batch = SequenceBatch.from_layouts(layouts, left_pad=True).to(self.device)
        visual = [self.visual(lat) for lat in clean]
        x = self.embed(batch.ids, visual, batch.visual_positions)
        cache = DynamicCache(config=self.llm.config)
        self.llm.model(
            inputs_embeds=x,
            attention_mask=batch.mask,
            position_ids=batch.position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        key_valid = torch.ones_like(batch.ids, dtype=torch.bool)
        for row, off in enumerate(batch.offsets):
            key_valid[row, :off] = False  # left padding
        lengths = torch.tensor([len(lay) for lay in layouts], device=self.device)
        return GenerationContext(cache, key_valid, lengths, x.shape[1])

    @torch.no_grad()
    def denoise(
        self, ctx: GenerationContext, x_t: torch.Tensor, t: torch.Tensor, visual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One velocity evaluation of the span ``[time] img…`` on x_t (B, C, T, h, w).

        `visual` may carry precomputed visual tokens of x_t (a compiled encoder); the prefix
        cache is cropped back afterwards, so every step sees the same prefix.
        """
        b = x_t.shape[0]
        visual = self.generation_visual(x_t) if visual is None else visual  # (B, N, D)
        x = torch.cat([self.time_embed(t.to(self.device))[:, None].to(visual.dtype), visual], dim=1)
        n = x.shape[1]
        mask = span_step_mask(ctx.key_valid, n)
        position_ids = ctx.next_position[:, None] + torch.arange(n, device=self.device)[None]
        hidden = self.llm.model(
            inputs_embeds=x.to(self.dtype),
            attention_mask=mask,
            position_ids=position_ids,
            past_key_values=ctx.cache,
            use_cache=True,
        ).last_hidden_state
        ctx.cache.crop(-n)  # drop this step's span: the next step sees the bare prefix again
        return self.velocity(hidden[:, 1:], t.to(self.device), tuple(x_t.shape[2:]))[:b]

    @torch.no_grad()
    def text_logprob(self, layouts: list[Layout], clean: list[torch.Tensor]) -> torch.Tensor:
        """Log-likelihood (B,) of each layout's supervised text (its answer) given its images.

        Teacher-forced, one pass: how readily the model would say that answer, which is what the
        pipeline's self-check ranks generated candidates by."""
        logits, labels, rows = self._answer_logits(layouts, clean)
        token_logprob = torch.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None])[:, 0]
        return torch.zeros(len(layouts), device=self.device).index_add_(0, rows, token_logprob)

    @torch.no_grad()
    def says(self, layouts: list[Layout], clean: list[torch.Tensor]) -> torch.Tensor:
        """(B,) bool: would greedy decoding write each layout's answer exactly, [eos] included?

        It would if every answer token is the argmax after the tokens before it, so one
        teacher-forced pass answers what a decode would need a pass per token for."""
        logits, labels, rows = self._answer_logits(layouts, clean)
        misses = (logits.argmax(dim=-1) != labels).long()
        return torch.zeros(len(layouts), dtype=torch.long, device=self.device).index_add_(0, rows, misses) == 0

    def _answer_logits(
        self, layouts: list[Layout], clean: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pass over the layouts: logits (S, V) at their S supervised positions, the labels (S,) there,
        and each position's row (S,)."""
        batch = SequenceBatch.from_layouts(layouts).to(self.device)
        visual = [self.visual(lat) for lat in clean]
        x = self.embed(batch.ids, visual, batch.visual_positions)
        hidden = self.llm.model(inputs_embeds=x, attention_mask=batch.mask, position_ids=batch.position_ids)
        supervised = batch.labels != -100
        logits = self.llm.lm_head(hidden.last_hidden_state[supervised])
        return logits, batch.labels[supervised], supervised.nonzero()[:, 0]

    @torch.no_grad()
    def start_decoding(self, layout: Layout, clean: list[torch.Tensor]) -> tuple[DynamicCache, torch.Tensor]:
        """Prefill an understanding prompt; returns the cache and the next-token logits (1, V)."""
        batch = SequenceBatch.from_layouts([layout]).to(self.device)
        visual = [self.visual(lat) for lat in clean]
        x = self.embed(batch.ids, visual, batch.visual_positions)
        cache = DynamicCache(config=self.llm.config)
        out = self.llm(
            inputs_embeds=x,
            attention_mask=batch.mask,
            position_ids=batch.position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return cache, out.logits[:, -1]

    @torch.no_grad()
    def next_logits(self, cache: DynamicCache, token: torch.Tensor, position: int) -> torch.Tensor:
        """Feed one decoded token (B,) at `position`; returns logits (B, V). Causal: sees everything."""
        mask = torch.ones(token.shape[0], 1, 1, position + 1, dtype=torch.bool, device=self.device)
        out = self.llm(
            input_ids=token[:, None].to(self.device),
            attention_mask=mask,
            position_ids=torch.full((token.shape[0], 1), position, device=self.device),
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits[:, -1]
