"""Word-level tokenizer for the offline models, built from the scene generator's words.

A 49k BPE vocabulary wastes a tiny model's capacity on words it never sees; a word
vocabulary of ~60 entries makes the text towers small and fast to train. It is saved
as a Hugging Face fast tokenizer so open_clip (HFTokenizer -> AutoTokenizer) and
BlipProcessor load it from a local directory with no hub access.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from offline_training import scenes

PAD, UNK, CLS, SEP, DEC = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[DEC]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, SEP, DEC)
# Filler words users type in queries; known to the vocabulary so they are not [UNK].
FILLER_WORDS: tuple[str, ...] = (
    "a", "an", "the", "of", "and", "on", "at", "in", "with", "photo", "picture", "image",
    "drawing", "shape", "shapes", "one", "two", "three", "some", "object", "objects",
    "background", "side",
)  # fmt: skip
# Spelling variants folded onto the generator's words by the normaliser.
_SYNONYMS: dict[str, str] = {
    "center": "centre",
    "middle": "centre",
    "grey": "gray",
    "violet": "purple",
}


def vocabulary() -> list[str]:
    """Special tokens first (ids 0..4), then every word the generator or queries use."""
    words: set[str] = set(FILLER_WORDS)
    words.update(scenes.SHAPES, scenes.COLOURS, scenes.SIZES, scenes.POSITIONS, scenes.BACKGROUNDS)
    for phrase in list(scenes.POSITION_PHRASES.values()) + list(scenes.QUERY_PREFIXES):
        words.update(phrase.split())
    return list(SPECIAL_TOKENS) + sorted(words)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Fast tokenizer: lowercase, punctuation to spaces, '[CLS] words [SEP]'."""
    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    norms: list[normalizers.Normalizer] = [normalizers.NFKC(), normalizers.Lowercase()]
    norms.append(normalizers.Replace(Regex(r"[^a-z0-9\s]"), " "))
    for src, dst in _SYNONYMS.items():
        norms.append(normalizers.Replace(Regex(rf"\b{src}\b"), dst))
    tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B {SEP}",
        special_tokens=[(CLS, vocab[CLS]), (SEP, vocab[SEP])],
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        cls_token=CLS,
        sep_token=SEP,
        bos_token=DEC,  # BLIP's decoder starts from bos_token_id = [DEC]
        eos_token=SEP,  # ... and stops at sep_token_id = [SEP]
        model_max_length=32,
        padding_side="right",
    )


def save_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Build and save_pretrained into ``directory``; returns the tokenizer."""
    tok = build_tokenizer()
    tok.save_pretrained(str(directory))
    return tok


def token_id(token: str) -> int:
    """Id of a token in the fixed vocabulary."""
    return vocabulary().index(token)
