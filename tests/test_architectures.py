"""The architecture matrix (tests/architecture_matrix.py) against its committed page, docs/architectures.md.

`make test` checks a fixed representative subset, one per kind of attention, cache and position scheme;
`make test-matrix` (run by .ci/run) checks every architecture. A row that differs from the page fails:
an upgrade that changes an outcome is seen, and the page is regenerated on purpose
(`python tests/architecture_matrix.py`)."""

from __future__ import annotations

import os
import re

import pytest
import torch
import transformers as tf

import architecture_matrix as matrix
from sktuning import SKModel, SKTuningConfig
from sktuning.core.errors import UsageError

REPRESENTATIVE = [
    "llama", "gpt2", "qwen3", "gemma2", "phi3", "falcon", "bloom", "mpt",  # rotary, learned, ALiBi, GQA, windows
    "deepseek_v3", "qwen3_moe",                                             # latent attention, experts
    "mamba", "qwen3_next", "rwkv",                                          # recurrent, hybrid, no cache at all
    "gemma4_text",                                                          # per-layer token inputs: refused
    "bert", "roberta", "modernbert", "deberta-v2",                          # encoders
    "t5", "bart",                                                           # encoder-decoders: their encoders
]
WHOLE = os.environ.get("SKTUNING_MATRIX") == "all"


def test_the_page_lists_every_architecture_of_the_registries():
    listed = set(matrix.committed_rows()) - {"architecture"}
    assert listed == set(matrix.architectures()), (
        "docs/architectures.md is out of date with the installed transformers: missing "
        f"{sorted(set(matrix.architectures()) - listed)}, extra {sorted(listed - set(matrix.architectures()))}; "
        "regenerate it with `python tests/architecture_matrix.py`.")


def test_representative_subset_is_in_the_registries():
    assert set(REPRESENTATIVE) <= set(matrix.architectures())


def _comparable(line: str) -> str:
    """A row with the numbers in its notes masked: other CPUs round differently, the outcomes must not."""
    return re.sub(r"\d+(\.\d+)?(e[-+]\d+)?", "#", line)


@pytest.mark.matrix
@pytest.mark.parametrize("arch", matrix.architectures() if WHOLE else REPRESENTATIVE)
def test_architecture_row_matches_the_page(arch):
    row = _comparable(matrix.render_row(matrix.row(arch)))
    assert row == _comparable(matrix.committed_rows().get(arch, "")), (
        f"{arch}'s outcome changed; if on purpose, regenerate docs/architectures.md with "
        "`python tests/architecture_matrix.py`.")


#: rows the page shows as FAIL today, each with what is known; a new FAIL, or a fixed one, fails the test below
KNOWN_FAILURES = {
    "funnel": "crashes inside its pooling attention on a padded batch with the prompt prepended",
    "inkling2_loop_text": "generate() crashes with an index error in its decoding step",
    "inkling2_text": "generate() crashes with an index error in its decoding step",
    "mra": "no gradient reaches the prompt through its approximate attention: training leaves the adapter as it was",
    "pegasus_x": "its encoder crashes on the prompt's position ids (block-local attention)",
    "reformer": "crashes on prompt vectors of a length its axial position embeddings do not tile",
    "xlm": "generate() fails an assertion in the model's own decoding step",
}


def test_only_the_known_architectures_fail():
    """Every other mode on every architecture passes or is refused with a reason (whole or per check)."""
    failing = {arch for arch, line in matrix.committed_rows().items() if "| FAIL |" in line}
    assert failing == set(KNOWN_FAILURES), (f"new failures: {sorted(failing - set(KNOWN_FAILURES))}; "
                                            f"fixed (remove them from KNOWN_FAILURES): "
                                            f"{sorted(set(KNOWN_FAILURES) - failing)}")


# -- the library's answers behind the matrix's rows --------------------------------------------------------
def test_a_whole_encoder_decoder_model_is_refused_with_the_encoder_as_the_way_forward():
    config = matrix.tiny_config("t5")
    model = tf.AutoModelForSeq2SeqLM.from_config(config)
    with pytest.raises(UsageError, match=r"encoder-decoder.*get_encoder\(\)"):
        SKModel(model, SKTuningConfig(mode="prompt", text="t"), matrix.TEXT)
    sk = SKModel(model.get_encoder(), SKTuningConfig(mode="prompt", text="t"), matrix.TEXT).eval()
    assert matrix._identity(sk, "right") <= matrix.ATOL


@pytest.mark.parametrize("arch", ["mamba", "qwen3_next"])
def test_recurrent_layers_never_read_padding_between_text_and_input(arch):
    """Left padding would put pads between the text and the input, where a recurrent state reads them."""
    model = matrix._sk(matrix.tiny_model(arch), "prompt")
    assert matrix._identity(model, "left") <= matrix.ATOL
    assert matrix._identity(model, "right") <= matrix.ATOL
    ids, mask, _ = matrix._batch("left")
    unmerged = matrix._logits(matrix._perturbed(model, 3), ids, mask)
    torch.testing.assert_close(matrix._logits(model.merge(), ids, mask), unmerged, rtol=0, atol=1e-5)


def test_recurrent_state_refuses_sk_prefix_and_names_sk_prompt():
    with pytest.raises(UsageError, match=r"recurrent.*mode='prompt'"):
        matrix._sk(matrix.tiny_model("mamba"), "prefix")


def test_alibi_without_the_mask_reads_a_left_padded_batch_as_the_row_alone():
    model = matrix._sk(matrix.tiny_model("mpt"), "prefix")
    assert matrix._identity(model, "left") <= matrix.ATOL


def test_a_model_that_needs_token_ids_past_its_embeddings_refuses_sk_prompt():
    with pytest.raises(UsageError, match=r"reads token ids past its embedding layer.*mode='prefix'"):
        matrix._sk(matrix.tiny_model("gemma4_text"), "prompt")


def test_generate_without_a_cache_argument_is_refused():
    model = matrix._sk(matrix.tiny_model("rwkv"), "prompt", task="causal-lm")
    with pytest.raises(UsageError, match="takes no cache argument"):
        model.generate(matrix.TEXT[None], max_new_tokens=2)
