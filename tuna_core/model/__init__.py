"""The TUNA model: visual encoder (VAE → representation encoder → connector), LLM, flow head."""

from tuna_core.model.tuna import GenerationContext, SequenceBatch, TunaModel

__all__ = ["GenerationContext", "SequenceBatch", "TunaModel"]
