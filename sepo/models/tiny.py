"""The embedded default model: a BPE tokenizer and a small Qwen3 trained from scratch.

The ``tiny`` profile (SPEC section 7) must run without network, so the
pipeline builds its own model: a byte-level BPE tokenizer trained on the SFT
corpus and a randomly initialised causal LM of the Qwen3 architecture, the
family of the paper's models.  Both are saved with ``save_pretrained``
(safetensors) and load back with ``AutoTokenizer`` / ``AutoModelForCausalLM``
like any Hub checkpoint, so nothing downstream special-cases the tiny model.

Byte-level BPE never meets an unknown character and decodes exactly, which
the policy's stop rule (a complete ``Action:`` line) relies on.  Merges may
cross spaces (a templated corpus repeats whole phrases, and sequence length
is what CPU training pays for: about 1.6 times fewer tokens than word-level
merges) but never newlines, so every message starts on a fresh token and a
prompt stays a token prefix of prompt + reply; digits stay single tokens so
that numbers (bids, demands, counts) remain compositional.  The chat
template is Qwen's ChatML (``<|im_start|>role\\n...<|im_end|>\\n``): the same
rendering as the paper models' templates, and a prompt rendered with
``add_generation_prompt`` is a token prefix of the prompt plus its completion,
which TRL's completion mask needs.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from sepo.config import TinyModelParams

PAD_TOKEN = "<|endoftext|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"  # also the end-of-sequence token: a reply ends with its turn
SPECIAL_TOKENS = (PAD_TOKEN, TURN_START, TURN_END)

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def chat_texts(conversations: Iterable[list[dict[str, str]]]) -> Iterable[str]:
    """Each conversation rendered as the tokenizer will see it (template markers included)."""
    for messages in conversations:
        yield "".join(f"{TURN_START}{m['role']}\n{m['content']}{TURN_END}\n" for m in messages)


def train_tokenizer(texts: Iterable[str], vocab_size: int, max_token_length: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with the ChatML special tokens and chat template.

    ``texts`` should be rendered chats (see ``chat_texts``) so that the merges
    cover the template's own words (``assistant``, ``user``) too;
    ``max_token_length`` caps a token's characters.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", "isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=max_token_length,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=TURN_END,
        pad_token=PAD_TOKEN,
        padding_side="left",  # generation pads on the left; TRL's collator pads as it needs
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_model(tokenizer: PreTrainedTokenizerFast, sizes: TinyModelParams, seed: int) -> Qwen3ForCausalLM:
    """A randomly initialised Qwen3 whose vocabulary and special ids match ``tokenizer``."""
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=sizes.hidden_size,
        intermediate_size=sizes.intermediate_size,
        num_hidden_layers=sizes.num_hidden_layers,
        num_attention_heads=sizes.num_attention_heads,
        num_key_value_heads=sizes.num_key_value_heads,
        head_dim=sizes.hidden_size // sizes.num_attention_heads,
        max_position_embeddings=sizes.max_position_embeddings,
        tie_word_embeddings=sizes.tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
