"""From task rows to padded tensors, the way the backbone expects its inputs.

- Special tokens: inputs keep the tokenizer's own (BERT's [CLS] ... [SEP]) unless the semantic text
  already took the sequence-start token (Llama's <s>), which must appear once, at the very front.
- Sentence pairs: tokenizers with a separator token (BERT-like) use their native pair encoding;
  decoders without one read `text + PAIR_SEPARATOR + text_pair`. When the text took the start
  token (so the input gets no special tokens), the separator token's id is put between the two.
  A pair too long for max_length loses tokens from its longer text first, as native pairs do, so a
  long premise never cuts the hypothesis away.
- Token tasks: the first sub-token of each word carries the word's tag; the rest are -100. A word
  with no sub-token (cut by max_length, or one the tokenizer drops) gets no prediction.
- Batches are padded dynamically, on the tokenizer's padding side.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

import torch

from sktuning.core.special_tokens import inputs_take_special_tokens
from sktuning.core.tasks import IGNORE_INDEX, Task, task_of

logger = logging.getLogger(__name__)

PAIR_SEPARATOR = "\n"


def _longest_first(first: int, second: int, overflow: int) -> tuple[int, int]:
    """Token counts to keep of two texts so that `overflow` fewer fit: the longer one loses tokens first."""
    cut_first = min(first, max(0, first - second), overflow)  # down to the shorter one's length
    overflow -= cut_first
    first -= cut_first
    cut_second = min(second, max(0, second - first), overflow)
    overflow -= cut_second
    second -= cut_second
    half = (overflow + 1) // 2  # then both alike
    first, second = max(0, first - half), max(0, second - (overflow - half))
    return first, second


class InputEncoder:
    """Tokenizes task rows for one semantic text and pads them into batches."""

    @classmethod
    def for_model(cls, model, tokenizer, max_length: int = 128, task: Task | None = None) -> "InputEncoder":
        """The encoder for an `SKModel`: its text's special-token rule and its input-length rule
        (`max_length`, fewer where the backbone's positions leave less room after the text)."""
        return cls(tokenizer, model.text_token_ids, task or task_of(model.sk_config), model.input_length(max_length))

    def __init__(self, tokenizer, text_input_ids: Sequence[int], task: Task, max_length: int = 128):
        """`task` (`sktuning.core.tasks`) decides whether rows are words to tag and how labels batch."""
        self.tokenizer, self.task, self.max_length = tokenizer, task, max_length
        self.add_special_tokens = inputs_take_special_tokens(tokenizer, text_input_ids)
        # native pair encoding puts the separator in only together with the other special tokens
        self.sep_id = getattr(tokenizer, "sep_token_id", None)
        self.native_pairs = self.add_special_tokens and self.sep_id is not None
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # -- encoding ------------------------------------------------------------------------------
    def encode_rows(self, rows: dict[str, list]) -> dict[str, list]:
        """A batch of rows (columnar, as `datasets.map(batched=True)` gives them) -> token ids."""
        if self.task.word_level:
            return self._encode_tokens(rows)
        texts, pairs = rows["text"], rows.get("text_pair")
        joined = False
        if pairs is not None and not self.native_pairs:
            if self.sep_id is not None:  # the text took the start token: join the pair around its separator
                return self._joined_pairs(rows)
            texts, pairs = [f"{a}{PAIR_SEPARATOR}{b}" for a, b in zip(texts, pairs)], None
            joined = True
        args = (texts, pairs) if pairs is not None else (texts,)
        enc = self.tokenizer(*args, truncation=True, max_length=self.max_length,
                             add_special_tokens=self.add_special_tokens)
        out = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        # only rows that came out at full length can have been cut: tokenize just those again to count
        full = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) >= self.max_length]
        out["truncated"] = [False] * len(texts)
        if full:
            again = self.tokenizer(*[[column[i] for i in full] for column in args],
                                   add_special_tokens=self.add_special_tokens)["input_ids"]
            for i, ids in zip(full, again):
                out["truncated"][i] = len(ids) > self.max_length
                if out["truncated"][i] and joined:  # cut from the right, the pair's second text would go first
                    self._balance_joined(out, i, rows["text"][i], rows["text_pair"][i], len(ids) - self.max_length)
        if "label" in rows:
            out["labels"] = rows["label"]
        return out

    def _balance_joined(self, out: dict[str, list], i: int, text: str, pair: str, overflow: int) -> None:
        """Re-encode joined row `i` with the longer text cut first (as `longest_first` does for native pairs)."""
        first, second = (self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in (text, pair))
        keep_first, keep_second = _longest_first(len(first), len(second), overflow)
        joined = (self.tokenizer.decode(first[:keep_first]) + PAIR_SEPARATOR
                  + self.tokenizer.decode(second[:keep_second]))
        enc = self.tokenizer(joined, truncation=True, max_length=self.max_length,
                             add_special_tokens=self.add_special_tokens)
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in out:
                out[key][i] = enc[key]

    def _joined_pairs(self, rows: dict[str, list]) -> dict[str, list]:
        first = self.tokenizer(rows["text"], add_special_tokens=False)["input_ids"]
        second = self.tokenizer(rows["text_pair"], add_special_tokens=False)["input_ids"]
        ids, truncated = [], []
        for a, b in zip(first, second):
            overflow = len(a) + 1 + len(b) - self.max_length
            truncated.append(overflow > 0)
            if overflow > 0:  # the longer text is cut first, so the second text is not lost
                keep_a, keep_b = _longest_first(len(a), len(b), overflow)
                a, b = a[:keep_a], b[:keep_b]
            ids.append((a + [self.sep_id] + b)[:self.max_length])
        out = {"input_ids": ids, "truncated": truncated}
        out["attention_mask"] = [[1] * len(row) for row in out["input_ids"]]
        if "label" in rows:
            out["labels"] = rows["label"]
        return out

    def _encode_tokens(self, rows: dict[str, list]) -> dict[str, list]:
        enc = self.tokenizer(rows["tokens"], is_split_into_words=True, truncation=True, max_length=self.max_length,
                             add_special_tokens=self.add_special_tokens)
        out: dict[str, list] = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        out["word_ids"], out["labels"], out["truncated"] = [], [], []
        for i, words in enumerate(rows["tokens"]):
            word_ids = enc.word_ids(i)
            first = [w is not None and (j == 0 or word_ids[j - 1] != w) for j, w in enumerate(word_ids)]
            out["word_ids"].append([w if f else -1 for w, f in zip(word_ids, first)])
            # cut: the row is full and words are left over (a word may also tokenize to nothing, e.g. U+200B)
            last = max((w for w in word_ids if w is not None), default=-1)
            out["truncated"].append(len(word_ids) >= self.max_length and last < len(words) - 1)
            if "tags" in rows:
                tags = rows["tags"][i]
                out["labels"].append([tags[w] if f else IGNORE_INDEX for w, f in zip(word_ids, first)])
        if not out["labels"]:
            del out["labels"]
        return out

    def encode(self, rows: Iterable[dict[str, Any]], name: str = "data") -> list[dict[str, Any]]:
        """Encode rows (a `datasets.Dataset` or a list of dicts); log how many were cut to `max_length`.

        Works in columnar chunks of 1,000 rows, as `datasets.map(batched=True)` would, without needing
        the `datasets` package."""
        rows = list(rows)
        keys = list(rows[0]) if rows else []  # the first row names the columns, as Dataset.from_list does
        encoded: list[dict[str, Any]] = []
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            columns = {key: [row.get(key) for row in chunk] for key in keys}
            out = self.encode_rows(columns)
            encoded += [{key: out[key][i] for key in out} for i in range(len(chunk))]
        truncated = sum(row.pop("truncated") for row in encoded)
        if truncated:
            logger.warning("%s: %d of %d rows are longer than %d tokens and were truncated", name, truncated,
                           len(encoded), self.max_length)
        return encoded

    # -- batching ------------------------------------------------------------------------------
    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad a list of encoded rows to the longest one."""
        width = max(len(f["input_ids"]) for f in features)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"

        def pad(seq, value):
            fill = [value] * (width - len(seq))
            return fill + list(seq) if left else list(seq) + fill

        batch = {"input_ids": torch.tensor([pad(f["input_ids"], self.pad_id) for f in features]),
                 "attention_mask": torch.tensor([pad(f["attention_mask"], 0) for f in features])}
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = torch.tensor([pad(f["token_type_ids"], 0) for f in features])
        if "labels" in features[0]:
            batch["labels"] = self.task.collate_labels([f["labels"] for f in features], pad)
        if "word_ids" in features[0]:
            batch["word_ids"] = torch.tensor([pad(f["word_ids"], -1) for f in features])
        return batch
