"""Tokenizers: the tiny one trained here, offline; the real ones loaded by hub id or path."""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from inform.data import synthetic

EOS = "<|endoftext|>"  # Pythia's special tokens, same ids (0 and 1)
PAD = "<|padding|>"


def train_tiny_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the synthetic task's text (no download).

    Byte-level, so any text (the HH or AlpacaFarm fixtures too) still encodes; with a few
    hundred merges every task word becomes one token. Deterministic: the corpus has a fixed
    seed, and BPE training breaks ties by a fixed rule.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(synthetic.corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=PAD,
        model_max_length=1024,
    )


def load_tokenizer(model_cfg):
    """The tokenizer of a model preset: trained here for the tiny model, else loaded by id/path."""
    if model_cfg.source is None:
        return train_tiny_tokenizer(model_cfg.get("tokenizer_vocab_size") or 400)
    return tokenizer_from(model_cfg.source, model_cfg.get("revision"), bool(model_cfg.get("trust_remote_code", False)))


def tokenizer_from(source: str, revision: str | None = None, trust_remote_code: bool = False):
    """A tokenizer from a hub id or a folder (an exported stage).

    Real tokenizers without a pad token (Pythia, Llama) get pad = EOS; padding is always
    read from the attention mask, so pad == EOS is harmless.
    """
    tok = AutoTokenizer.from_pretrained(str(source), revision=revision, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
