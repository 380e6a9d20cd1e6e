"""Tokenizers: a word-level one for Shapes World (tiny) and any pretrained one from a folder.

Both are `tokenizers`/transformers objects saved as ``tokenizer.json``; this wrapper gives them
one small interface and guarantees TUNA's special tokens exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tuna_core.config import SPECIAL_TOKENS
from tuna_core.layout import SpecialIds

_SPACE_BEFORE_PUNCT = re.compile(r" ([,.?!])")


class TunaTokenizer:
    """Encode/decode text and expose the special-token ids layouts need."""

    def __init__(self, backend: Tokenizer | PreTrainedTokenizerBase) -> None:
        self.backend = backend
        self.special = SpecialIds(**{k: self.token_id(v) for k, v in SPECIAL_TOKENS.items() if k != "unk"})
        self._special_set = set(vars(self.special).values())

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def word_level(cls, words: Iterable[str]) -> TunaTokenizer:
        """A lower-casing word tokenizer whose vocabulary is the special tokens plus `words`."""
        vocab: dict[str, int] = {}
        for token in [*SPECIAL_TOKENS.values(), *sorted(set(words))]:
            vocab.setdefault(token, len(vocab))
        tok = Tokenizer(WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
        tok.add_special_tokens(list(SPECIAL_TOKENS.values()))
        return cls(tok)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> TunaTokenizer:
        """Load ``tokenizer.json`` from a TUNA checkpoint, or any transformers tokenizer folder."""
        folder = Path(folder)
        if _is_word_level(folder):
            return cls(Tokenizer.from_file(str(folder / "tokenizer.json")))
        if not (folder / "tokenizer.json").exists() and not (folder / "tokenizer_config.json").exists():
            raise FileNotFoundError(f"missing tokenizer file: {folder / 'tokenizer.json'}")
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        missing = [t for t in SPECIAL_TOKENS.values() if t not in tok.get_vocab()]
        if missing:
            tok.add_special_tokens({"additional_special_tokens": missing})
        return cls(tok)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(self.backend, Tokenizer):
            self.backend.save(str(folder / "tokenizer.json"))
        else:
            self.backend.save_pretrained(str(folder))

    # -- use ----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        if isinstance(self.backend, Tokenizer):
            return self.backend.get_vocab_size(with_added_tokens=True)
        return len(self.backend)

    def token_id(self, token: str) -> int:
        idx = (
            self.backend.token_to_id(token)
            if isinstance(self.backend, Tokenizer)
            else self.backend.convert_tokens_to_ids(token)
        )
        if idx is None:
            raise ValueError(f"tokenizer has no token {token!r}")
        return int(idx)

    def encode(self, text: str) -> list[int]:
        if isinstance(self.backend, Tokenizer):
            return list(self.backend.encode(text, add_special_tokens=False).ids)
        return list(self.backend.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        ids = [i for i in ids if i not in self._special_set]
        if isinstance(self.backend, Tokenizer):
            return _SPACE_BEFORE_PUNCT.sub(r"\1", self.backend.decode(ids, skip_special_tokens=True))
        return self.backend.decode(ids, skip_special_tokens=True)

    def unknown_words(self, text: str) -> list[str]:
        """Words the word-level vocabulary lacks (empty for subword tokenizers, which have none)."""
        if not isinstance(self.backend, Tokenizer):
            return []
        enc = self.backend.encode(text, add_special_tokens=False)
        unk = self.token_id(SPECIAL_TOKENS["unk"])
        return [tok for tok, i in zip(enc.tokens, enc.ids, strict=True) if i == unk]


def _is_word_level(folder: Path) -> bool:
    """True for a ``tokenizer.json`` written by `word_level` (no transformers config beside it)."""
    path = folder / "tokenizer.json"
    return path.exists() and json.loads(path.read_text()).get("model", {}).get("type") == "WordLevel"
