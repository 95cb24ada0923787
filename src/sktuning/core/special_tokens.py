"""The sequence-start rule, in one place: the start token appears once, at the very front.

A tokenizer that puts a start token first (Llama's `<s>`) gives it to the semantic text, which comes
first; the inputs after the text then get no special tokens of their own. A tokenizer without one
(BERT's [CLS] ... [SEP] is not a start token of this kind, GPT-2 adds nothing) leaves the inputs
their own special tokens.
"""

from __future__ import annotations

from typing import Sequence


def tokenize_text(tokenizer, text: str) -> list[int]:
    """The text's token ids; it takes the sequence-start token when the tokenizer puts one first."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    first = tokenizer(text)["input_ids"][:1]
    if bos is not None and first == [bos] and ids[:1] != [bos]:
        ids = [bos] + ids
    return ids


def inputs_take_special_tokens(tokenizer, text_input_ids: Sequence[int]) -> bool:
    """Whether inputs that follow this text are tokenized with the tokenizer's special tokens: not
    when the text already took the sequence-start token, which must not appear twice."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return not (bos is not None and len(text_input_ids) and int(text_input_ids[0]) == bos)
