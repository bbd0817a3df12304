"""Offline tiny-model factory: a character-level tokenizer and a small Llama.

Used by the demo and the tests so that nothing is downloaded. The tokenizer is a
real `PreTrainedTokenizerFast`, saved and reloaded with `save_pretrained`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARSET = string.printable[:95]  # digits, letters, punctuation, space


@dataclass(frozen=True)
class TinySpec:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 256
    seed: int = 0
    code_chars: bool = False  # add newline and tab (code tasks); off keeps the arithmetic vocab as it was


def spec_from_config(t) -> TinySpec:
    """TinySpec from a `selftaught.config.TinyModelConfig` (the config validates, this is what builds)."""
    return TinySpec(
        t.hidden_size, t.num_layers, t.num_heads, t.intermediate_size, t.max_positions, t.seed, t.code_chars
    )


def char_tokenizer(code_chars: bool = False):
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(CHARSET) + (["\n", "\t"] if code_chars else []))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # "." skips newlines; code needs every character on its own.
    core.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]" if code_chars else "."), behavior="isolated")
    core.decoder = decoders.Fuse()
    # padding_side must be given here: set afterwards it is lost on reload.
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
    )


def build_tiny_model(spec: TinySpec, out_dir: str | Path) -> Path:
    """Write a randomly initialised tiny Llama and its tokenizer to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer(spec.code_chars)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
