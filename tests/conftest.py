"""Tiny randomly initialised backbones, one per supported architecture family."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers as tf

VOCAB = 101
SMALL = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)

TINY_CONFIGS = {
    "llama": lambda: tf.LlamaConfig(**SMALL, intermediate_size=64, num_key_value_heads=2, max_position_embeddings=128),
    "mistral": lambda: tf.MistralConfig(**SMALL, intermediate_size=64, num_key_value_heads=2,
                                        max_position_embeddings=128, sliding_window=None),
    "qwen2": lambda: tf.Qwen2Config(**SMALL, intermediate_size=64, num_key_value_heads=2, max_position_embeddings=128),
    "gpt2": lambda: tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128),
    "gpt_neox": lambda: tf.GPTNeoXConfig(**SMALL, intermediate_size=64, max_position_embeddings=128),
    "phi": lambda: tf.PhiConfig(**SMALL, intermediate_size=64, max_position_embeddings=128),
    "bloom": lambda: tf.BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4),
    "falcon": lambda: tf.FalconConfig(**SMALL, new_decoder_architecture=True, num_kv_heads=2),
    "opt": lambda: tf.OPTConfig(**SMALL, ffn_dim=64, max_position_embeddings=128, word_embed_proj_dim=32,
                                pad_token_id=1),
    "bert": lambda: tf.BertConfig(**SMALL, intermediate_size=64, max_position_embeddings=128),
    "roberta": lambda: tf.RobertaConfig(**SMALL, intermediate_size=64, max_position_embeddings=130, pad_token_id=1),
}
DECODERS = ["llama", "mistral", "qwen2", "gpt2", "gpt_neox", "phi", "bloom", "falcon", "opt"]
ENCODERS = ["bert", "roberta"]
# token ids used in tests avoid the low ids (0 = our padding, 1 = RoBERTa's padding_idx)
LOW_ID = 5


def tiny_backbone(arch: str, seed: int = 0, wrapper: str = "base") -> torch.nn.Module:
    torch.manual_seed(seed)
    config = TINY_CONFIGS[arch]()
    cls = {"base": tf.AutoModel, "causal-lm": tf.AutoModelForCausalLM, "masked-lm": tf.AutoModelForMaskedLM}[wrapper]
    return cls.from_config(config).eval()


def random_ids(*shape: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(LOW_ID, VOCAB, shape, generator=gen)


def padded_batch(lengths: list[int], side: str, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Pad sequences of `lengths` with id 0 on `side`; returns ids, mask and the unpadded rows."""
    rows = [random_ids(n, seed=seed + i) for i, n in enumerate(lengths)]
    width = max(lengths)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        where = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, where], mask[i, where] = row, 1
    return ids, mask, rows


@pytest.fixture(params=list(TINY_CONFIGS))
def arch(request) -> str:
    return request.param


def tiny_tokenizer():
    """A word-level tokenizer over VOCAB ids ("w5".."w100"), with <s> added first like Llama's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<sep>": 4}
    vocab.update({f"w{i}": i for i in range(LOW_ID, VOCAB)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_backbone("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """Sentences labelled 'yes' when they contain w7."""
    import random

    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("data")
    for split, n in (("train", 96), ("validation", 32), ("test", 32)):
        lines = ["text,label"]
        for _ in range(n):
            words = [f"w{rng.randint(10, 99)}" for _ in range(rng.randint(3, 7))]
            label = rng.random() < 0.5
            if label:
                words[rng.randrange(len(words))] = "w7"
            lines.append(f"{' '.join(words)},{'yes' if label else 'no'}")
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    conll = "\n\n".join("\n".join(f"w{10 + (i + j) % 80} {'N' if (i + j) % 2 else 'V'}" for j in range(5))
                        for i in range(40))
    (folder / "tags.conll").write_text(conll + "\n")
    return folder


@pytest.fixture
def in_process(monkeypatch):
    """The suite's runs in this process, each record as its subprocess would return it (through JSON, with
    settings and wall time; `subprocess_run` still appends it): a subprocess spends about 8 s importing
    before a tiny run of 1 s. The tests of the subprocess itself (interrupted suites, the CLI, Ray's
    workers) do not use this."""
    import dataclasses
    import json
    import time

    import sktuning.bench.runner as runner
    from sktuning.bench import run_one

    def run(settings, method, lr, seed):
        started = time.perf_counter()
        record = json.loads(json.dumps(run_one(settings, method, lr, seed)))
        record.update(settings=dataclasses.asdict(settings), seconds=round(time.perf_counter() - started, 1))
        return record
    monkeypatch.setattr(runner, "run_in_subprocess", run)


#: programs whose launch costs a Python start-up (about 8 s of imports here): a test that starts one
#: carries @pytest.mark.subprocess, so that `make test-fast` can leave it out
PYTHON_PROGRAMS = {os.path.basename(sys.executable), "python", "python3", "sktune", "torchrun", "accelerate", "ray"}


@pytest.fixture(autouse=True)
def _subprocess_marker_is_honest(request, monkeypatch):
    """Fail a test that starts a Python program without the `subprocess` marker (the markers by cost stay
    true as tests change, instead of being remembered)."""
    if request.node.get_closest_marker("subprocess"):
        return
    started = subprocess.Popen.__init__

    def guarded(self, args, *rest, **kwargs):
        program = args if isinstance(args, (str, bytes, os.PathLike)) else args[0]
        if os.path.basename(os.fsdecode(program)).split()[0] in PYTHON_PROGRAMS:
            pytest.fail(f"{request.node.nodeid} starts {program!r}: mark it @pytest.mark.subprocess", pytrace=False)
        started(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)
