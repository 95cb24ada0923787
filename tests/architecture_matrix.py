"""The architecture matrix: every architecture of the pinned transformers' causal-LM, masked-LM,
sequence-classification and seq2seq registries, built tiny and random from its own config class, and
SK-Prompt and SK-Prefix checked on each (the invariants of docs/guarantees.md, per check).

    python tests/architecture_matrix.py            # rewrite docs/architectures.md from a fresh run (~15 min)
    python tests/architecture_matrix.py qwen3 t5   # print those rows only

`tests/test_architectures.py` runs the same rows and fails where one differs from the committed page,
so a transformers upgrade that changes an outcome cannot pass silently.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers as tf
from transformers import CONFIG_MAPPING
from transformers.models.auto import modeling_auto

from sktuning import SKModel, SKTuningConfig
from sktuning.core.errors import UsageError
from sktuning.inference.multi_adapter import MultiAdapterModel

PAGE = Path(__file__).resolve().parents[1] / "docs" / "architectures.md"
VOCAB = 128
LOW, HIGH = 5, 100  # token ids the checks use: clear of the usual special ids
TEXT = torch.arange(LOW + 11, LOW + 16)  # the semantic text's 5 token ids
ATOL = 1e-5

#: registry -> the auto class that builds its model; an architecture in several takes the first
REGISTRIES = {
    "seq2seq": ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", tf.AutoModelForSeq2SeqLM),
    "causal-lm": ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", tf.AutoModelForCausalLM),
    "masked-lm": ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", tf.AutoModelForMaskedLM),
    "sequence-classification": ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", tf.AutoModel),
}

#: config attribute -> its tiny value, set wherever the default config has the attribute
SIZES = {
    **dict.fromkeys(("hidden_size", "d_model", "n_embd", "n_embed", "dim", "embed_dim", "hidden_dim",
                     "word_embed_proj_dim", "embedding_size"), 64),
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers", "encoder_layers",
                     "num_decoder_layers"), 2),
    **dict.fromkeys(("num_attention_heads", "n_head", "num_heads", "n_heads", "decoder_attention_heads",
                     "encoder_attention_heads"), 4),
    **dict.fromkeys(("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num"), 2),
    **dict.fromkeys(("intermediate_size", "ffn_dim", "n_inner", "decoder_ffn_dim", "encoder_ffn_dim", "d_ff",
                     "ffn_hidden_size"), 128),
    **dict.fromkeys(("moe_intermediate_size", "shared_expert_intermediate_size", "expert_intermediate_size"), 32),
    **dict.fromkeys(("head_dim", "d_kv", "kv_channels", "attention_head_dim"), 16),
    **dict.fromkeys(("max_position_embeddings", "n_positions", "n_ctx"), 128),
    **dict.fromkeys(("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"), 4),
    **dict.fromkeys(("num_experts_per_tok", "moe_topk", "num_experts_per_token"), 2),
    **dict.fromkeys(("n_shared_experts", "n_group", "topk_group"), 1),
    **dict.fromkeys(("sliding_window", "window_size", "attention_window"), 64),
    **dict.fromkeys(("rotary_dim",), 8),
    # multi-head latent attention (DeepSeek and kin)
    **dict.fromkeys(("qk_rope_head_dim", "qk_nope_head_dim"), 8),
    **dict.fromkeys(("v_head_dim", "kv_lora_rank"), 16),
    **dict.fromkeys(("q_lora_rank",), 32),
    # state-space layers (Mamba and the hybrids): heads x head size = expand x hidden size
    **dict.fromkeys(("mamba_d_state", "ssm_state_size", "state_size", "mamba_chunk_size", "chunk_size",
                     "mamba_d_head", "mamba_head_dim", "mamba_headdim"), 16),
    **dict.fromkeys(("mamba_n_heads", "mamba_num_heads", "n_mamba_heads", "mamba_dt_rank"), 8),
    **dict.fromkeys(("mamba_d_ssm",), 128),
    **dict.fromkeys(("num_latents",), 8),
    **dict.fromkeys(("d_latents",), 64),
    "vocab_size": VOCAB,
}
TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
             "decoder_start_token_id", "mask_token_id", "unk_token_id")

#: where the generic rule cannot work: per-architecture settings on top of it (None: leave it unset)
OVERRIDES: dict[str, dict] = {
    "bamba": {"layer_types": None, "attn_layer_indices": [1]},
    "jamba": {"layer_types": None, "attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2,
              "expert_layer_offset": 1},
    "granitemoehybrid": {"layer_types": ["mamba", "attention"]},
    "recurrent_gemma": {"layer_types": None, "block_types": ["recurrent", "attention"], "attention_window_size": 64},
    "deepseek_v2": {"num_experts_per_tok": 2},
    "dots1": {"n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1},
    "ernie4_5_moe": {"moe_k": 2, "moe_num_experts": 4},
    "esmc": {"num_key_value_heads": 4},
    "gpt_neo": {"attention_types": [[["global", "local"], 1]]},
    "mamba2": {"num_heads": 8, "head_dim": 16, "n_groups": 1},
    "nemotron_h": {"n_groups": 1},
    "zaya": {"num_experts_per_tok": 1},
    "zamba": {"layer_types": None, "attn_layer_period": 2, "attn_layer_offset": 1, "num_hidden_layers": 3},
    "esm": {"pad_token_id": 1},
    "gemma3n_text": {"num_kv_shared_layers": 0},
    "gemma4_assistant": {"hidden_size_per_layer_input": 0},
    "zamba2": {"layer_types": None, "hybrid_layer_ids": [1]},
    "cohere_compass_text": {"layer_types": None},
    "reformer": {"axial_pos_embds_dim": [32, 32], "axial_pos_shape": [8, 16], "attn_layers": ["local", "local"]},
    "xmod": {"default_language": "en_XX"},
}


def _shrunk(config) -> dict:
    """Constructor arguments that make `config`'s model tiny: sizes, layer types, token ids in range."""
    values = config.to_dict()
    kwargs = {k: v for k, v in SIZES.items() if k in values and not isinstance(values[k], (list, dict))
              and (values[k] is not None or k in ("head_dim", "sliding_window", "vocab_size"))}
    for i, name in enumerate(TOKEN_IDS):
        if isinstance(values.get(name), int) and values[name] >= VOCAB:
            kwargs[name] = 1 + i % 3
        elif isinstance(values.get(name), list):
            kwargs[name] = [1 + i % 3]
    if "qk_rope_head_dim" in values:  # latent attention: the rotary part is the head size; a key per head
        kwargs.update({k: v for k, v in (("head_dim", SIZES["qk_rope_head_dim"]),
                                         ("num_key_value_heads", SIZES["num_attention_heads"]),
                                         ("qk_head_dim", SIZES["qk_rope_head_dim"] + SIZES["qk_nope_head_dim"]))
                       if k in values})
    types = values.get("layer_types")
    if isinstance(types, list) and types:  # every kind of layer the family has, at least two layers
        kinds = list(dict.fromkeys(types))
        kwargs["layer_types"] = [kinds[i % len(kinds)] for i in range(max(2, len(kinds)))]
        for name in ("num_hidden_layers", "n_layer", "num_layers"):
            if name in kwargs:
                kwargs[name] = len(kwargs["layer_types"])
    layers = len(kwargs.get("layer_types", [])) or SIZES["num_hidden_layers"]
    for name, tiny in SIZES.items():  # per-layer sizes (Gemma 3n's intermediate_size): one per tiny layer
        if isinstance(values.get(name), list) and values[name] and all(isinstance(v, int) for v in values[name]):
            kwargs[name] = [tiny] * layers
    full = values.get("num_hidden_layers")
    for name, value in values.items():  # any other per-layer list: its first entries
        if name not in kwargs and isinstance(value, list) and isinstance(full, int) and len(value) == full > layers:
            kwargs[name] = value[:layers]
    return kwargs


def tiny_config(arch: str):
    cls = CONFIG_MAPPING[arch]
    default = cls()
    kwargs = _shrunk(default)
    for name in getattr(cls, "sub_configs", None) or {}:
        sub = getattr(default, name, None)
        if hasattr(sub, "to_dict"):  # per-layer settings of the full-size layer indices are derived again
            kwargs[name] = {k: v for k, v in {**sub.to_dict(), **_shrunk(sub)}.items() if k != "per_layer_config"}
    for key, value in OVERRIDES.get(arch, {}).items():
        if value is None:
            kwargs.pop(key, None)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def registry_of(arch: str) -> str:
    return next(kind for kind, (mapping, _) in REGISTRIES.items() if arch in getattr(modeling_auto, mapping))


def architectures() -> list[str]:
    return sorted({arch for mapping, _ in REGISTRIES.values() for arch in getattr(modeling_auto, mapping)})


def tiny_model(arch: str, seed: int = 0):
    """The architecture's tiny random model (a seq2seq model's encoder), checked to run on plain ids."""
    kind = registry_of(arch)
    config = tiny_config(arch)
    if kind == "causal-lm" and hasattr(config, "is_decoder"):
        config.is_decoder = True  # BERT-style models are causal language models only as decoders
    torch.manual_seed(seed)
    model = REGISTRIES[kind][1].from_config(config).eval()
    if kind == "seq2seq":
        model = model.get_encoder()
    with torch.no_grad():
        model(input_ids=torch.randint(LOW, HIGH, (2, 6)))
    return model


# -- the checks ---------------------------------------------------------------------------------------
def _batch(side: str) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Three rows of 7, 3 and 6 tokens padded on `side` ("none": three rows of 7)."""
    gen = torch.Generator().manual_seed(2)
    rows = [torch.randint(LOW, HIGH, (n,), generator=gen) for n in ((7, 7, 7) if side == "none" else (7, 3, 6))]
    ids = torch.zeros(len(rows), 7, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        where = slice(0, len(row)) if side == "right" else slice(7 - len(row), 7)
        ids[i, where], mask[i, where] = row, 1
    return ids, mask, rows


def _sk(backbone, mode: str, task: str = "sequence-classification", adapter: str = "lowrank") -> SKModel:
    return SKModel(backbone, SKTuningConfig(mode=mode, text="task text", adapter=adapter, task=task), TEXT).eval()


def _last_hidden(backbone, ids, mask=None) -> torch.Tensor:
    return _batch_first(backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1],
                        *ids.shape)


def _batch_first(hidden: torch.Tensor, batch: int, seq: int) -> torch.Tensor:
    """(batch, seq, ...): Gemma 3n keeps its parallel streams first, (streams, batch, seq, dim)."""
    if hidden.dim() == 4 and tuple(hidden.shape[:2]) != (batch, seq) and tuple(hidden.shape[1:3]) == (batch, seq):
        return hidden.permute(1, 2, 0, 3)
    return hidden


def _identity(model: SKModel, side: str) -> float:
    """Largest difference, over real tokens of the last hidden state, from the backbone reading text + input."""
    ids, mask, rows = _batch(side)
    with torch.no_grad():
        out = _batch_first(model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1],
                           *ids.shape)
        worst = 0.0
        for b, row in enumerate(rows):
            want = _last_hidden(model.backbone, torch.cat([TEXT, row])[None])
            worst = max(worst, _error(out[b, mask[b].bool()], want[0, len(TEXT):]))
    return worst


def _error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest difference, relative to the reference's scale where that exceeds 1 (Gemma's activations
    run to several units, where fp32 kernels that split work differently differ by ~1e-5)."""
    return (got - want).abs().max().item() / max(1.0, want.abs().max().item())


def _allows(backbone, side: str) -> bool:
    """Does the bare backbone give a padded row what it gives the row alone? If not, that padding side is
    the architecture's own limit (its positions or mixing ignore the mask), not SK-Tuning's to keep."""
    ids, mask, rows = _batch(side)
    with torch.no_grad():
        out = _last_hidden(backbone, ids, mask)
        return all(_error(out[b, mask[b].bool()], _last_hidden(backbone, row[None])[0]) <= ATOL
                   for b, row in enumerate(rows))


def _causal(backbone) -> bool:
    """Do a token's states ignore the tokens after it? (A bidirectional encoder's text keys and values
    depend on the input, so SK-Prefix there reads the text alone by design: no identity to check.)"""
    ids = torch.randint(LOW, HIGH, (1, 6), generator=torch.Generator().manual_seed(4))
    other = ids.clone()
    other[0, -1] = LOW if ids[0, -1] != LOW else LOW + 1
    with torch.no_grad():
        first, second = (_last_hidden(backbone, x)[0, :-1] for x in (ids, other))
        return _error(first, second) <= ATOL


def _perturbed(model: SKModel, seed: int) -> SKModel:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def _logits(model, ids, mask) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def _train(model: SKModel, side: str) -> str | None:
    """Three Adam steps on a fixed batch: every trainable tensor moves and the loss falls."""
    ids, mask, _ = _batch(side)
    labels = torch.tensor([0, 1, 0])
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(3):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        final = model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    still = sorted(n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[n]))
    if still:
        return f"unchanged by training: {still}"
    if not final < losses[0]:
        return f"loss did not fall ({losses[0]:.4f} -> {final:.4f})"
    return None


@dataclass
class Outcome:
    """One mode's result on one architecture: each check 'ok', '-' (not applicable) or what went wrong."""

    refused: str | None = None
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """pass; partial (some checks refused with a reason, none wrong); refused; FAIL (a wrong answer
        or a crash without a reason)."""
        if self.refused is not None:
            return "refused"
        if all(v in ("ok", "-") for v in self.checks.values()):
            return "pass"
        if all(v in ("ok", "-") or v.startswith("refused") for v in self.checks.values()):
            return "partial"
        return "FAIL"


CHECKS = ("identity", "identity right", "identity left", "train", "merge", "save/load", "generate", "multi-adapter")


def check_mode(arch: str, mode: str) -> Outcome:
    outcome = Outcome()
    kind = registry_of(arch)
    try:
        backbone = tiny_model(arch)
    except Exception as err:  # the generic tiny config does not fit this family: a gap in the matrix
        outcome.refused = f"matrix cannot build it: {type(err).__name__}: {_short(err)}"
        return outcome
    try:
        model = _sk(backbone, mode)
    except UsageError as err:
        outcome.refused = _short(err)
        return outcome
    except Exception as err:
        outcome.checks["build"] = f"crash: {type(err).__name__}: {_short(err)}"
        return outcome
    step = "identity"
    try:
        bidirectional_prefix = mode == "prefix" and not _causal(model.backbone)
        for side, step in (("none", "identity"), ("right", "identity right"), ("left", "identity left")):
            if bidirectional_prefix or (side != "none" and not _allows(model.backbone, side)):
                outcome.checks[step] = "-"
                continue
            error = _identity(model, side)
            outcome.checks[step] = "ok" if error <= ATOL else f"differs by {error:.1e}"
        side = next((s for s, c in (("right", "identity right"), ("left", "identity left"))
                     if outcome.checks[c] == "ok"), "none")
        step = "train"
        outcome.checks[step] = _train(model, side) or "ok"
        ids, mask, _ = _batch(side)
        step = "merge"
        want = _logits(model, ids, mask)
        got = _logits(model.merge(), ids, mask)
        model.unmerge()
        outcome.checks[step] = _compare(got, want)
        step = "save/load"
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            loaded = SKModel.from_pretrained(model.backbone, folder)
        outcome.checks[step] = _compare(_logits(loaded, ids, mask), want)
        step = "generate"
        outcome.checks[step] = _generate(backbone, mode, outcome.checks["identity left"] == "ok") \
            if kind == "causal-lm" else "-"
        step = "multi-adapter"
        outcome.checks[step] = _multi(backbone, mode, side, kind)
    except UsageError as err:
        outcome.checks[step] = f"refused: {_short(err)}"
    except Exception as err:
        outcome.checks[step] = f"crash: {type(err).__name__}: {_short(err)}"
    return outcome


def _compare(got: torch.Tensor, want: torch.Tensor) -> str:
    error = _error(got, want)
    return "ok" if error <= ATOL else f"differs by {error:.1e}"


def _generate(causal, mode: str, left_padding: bool) -> str:
    """Left-padded batch where the architecture allows left padding, else each row alone."""
    model = _sk(causal, mode, task="causal-lm")
    ids, mask, rows = _batch("left")
    batch = model.generate(ids, mask, max_new_tokens=4) if left_padding else None
    for b, row in enumerate(rows):
        got = batch[b, ids.shape[1]:] if batch is not None else model.generate(row[None], max_new_tokens=4)[0, len(row):]
        want = _greedy(causal, torch.cat([TEXT, row])[None], 4)
        if got.tolist() != want.tolist():
            return f"row {b}: {got.tolist()} instead of {want.tolist()}"
    return "ok"


@torch.no_grad()
def _greedy(causal, ids: torch.Tensor, new: int) -> torch.Tensor:
    """Greedy decoding by re-reading the whole sequence at each step: no cache, so no cache bug (transformers'
    own generate() numbers RoBERTa-style positions otherwise when it decodes from a cache)."""
    for _ in range(new):
        ids = torch.cat([ids, causal(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, -new:]


def _multi(backbone, mode: str, side: str, kind: str) -> str:
    """Two adapters of this mode in one mixed batch: each row gets what its adapter gives alone."""
    task = "causal-lm" if kind == "causal-lm" else "sequence-classification"
    models = {name: _perturbed(_sk(backbone, mode, task=task, adapter=adapter), seed)
              for name, adapter, seed in (("a", "lowrank", 1), ("b", "linear", 2))}
    multi = MultiAdapterModel(models["a"].backbone if task != "causal-lm" else backbone)
    for name, model in models.items():
        multi.add(name, model)
    ids, mask, _ = _batch(side)
    names = ["a", "b", "a"]
    with torch.no_grad():
        got = multi(ids, mask, names)
        for row, name in enumerate(names):
            real = mask[row].bool()
            want = models[name](input_ids=ids[row][real][None]).logits[0]
            mine = got[row][real] if got[row].dim() == 2 else got[row]
            if (error := _error(mine, want)) > ATOL:
                return f"row {row} differs by {error:.1e}"
    return "ok"


def _short(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- the page -------------------------------------------------------------------------------------------
def _cell(outcome: Outcome, check: str) -> str:
    value = outcome.checks.get(check)
    if value is not None and value.startswith("refused"):
        return "R"
    return {"ok": "✓", "-": "–", None: ""}.get(value, "✗")


def row(arch: str) -> dict:
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels' splitting, hence the same rounding, on every machine
    try:
        with quieted():
            outcomes = {mode: check_mode(arch, mode) for mode in ("prompt", "prefix")}
    finally:
        torch.set_num_threads(threads)
    return {"arch": arch, "registry": registry_of(arch), "outcomes": outcomes,
            "seconds": time.perf_counter() - started}


def render_row(result: dict) -> str:
    cells = [result["arch"], result["registry"]]
    notes = []
    for mode, outcome in result["outcomes"].items():
        cells.append(outcome.verdict)
        cells.extend(_cell(outcome, check) for check in CHECKS)
        if outcome.refused is not None:
            notes.append(f"SK-{mode.title()}: {outcome.refused}")
        notes.extend(f"SK-{mode.title()} {check}: {value}" for check, value in outcome.checks.items()
                     if value not in ("ok", "-"))
    cells.append("; ".join(notes).replace("|", "/"))
    return "| " + " | ".join(cells) + " |"


def header() -> list[str]:
    short = ("identity", "R", "L", "train", "merge", "save", "generate", "multi")
    names = ["architecture", "registry", "SK-Prompt", *short, "SK-Prefix", *short, "notes"]
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def quiet() -> None:
    warnings.filterwarnings("ignore")
    tf.logging.set_verbosity_error()
    logging.getLogger("sktuning").setLevel(logging.ERROR)


@contextmanager
def quieted():
    """`quiet()` for a block, then the warnings filters and log levels as they were (pytest's other tests
    read transformers' and sktuning's messages)."""
    verbosity, level = tf.logging.get_verbosity(), logging.getLogger("sktuning").level
    with warnings.catch_warnings():
        quiet()
        try:
            yield
        finally:
            tf.logging.set_verbosity(verbosity)
            logging.getLogger("sktuning").setLevel(level)


def committed_rows() -> dict[str, str]:
    lines = PAGE.read_text(encoding="utf-8").splitlines() if PAGE.exists() else []
    return {line.split("|")[1].strip(): line for line in lines if line.startswith("| ") and "|" in line[2:]}


def write_page(results: list[dict]) -> None:
    import platform

    import sktuning

    counts = {}
    for result in results:
        for mode, outcome in result["outcomes"].items():
            counts[(mode, outcome.verdict)] = counts.get((mode, outcome.verdict), 0) + 1
    summary = ", ".join(f"SK-{mode.title()}: " + ", ".join(f"{counts.get((mode, v), 0)} {v}"
                                                            for v in ("pass", "partial", "refused", "FAIL"))
                        for mode in ("prompt", "prefix"))
    lines = [
        "# Architectures: what SK-Tuning does on every model transformers ships",
        "",
        "Generated by `python tests/architecture_matrix.py` (do not edit by hand); "
        "`tests/test_architectures.py` fails where a fresh run differs from a row here.",
        "",
        f"transformers {tf.__version__}, torch {torch.__version__}, sktuning {sktuning.__version__}, "
        f"python {platform.python_version()}; CPU, fp32, each model's default attention implementation.",
        "",
        "Every architecture of transformers' seq2seq, causal-LM, masked-LM and sequence-classification",
        "registries (an architecture in several is built from the first of those), as a tiny random model",
        "made from its own config class (2 layers, hidden size 64, 4 heads, a vocabulary of 128; per-family",
        "settings only where that rule cannot work; *matrix cannot build it* in the notes marks where even",
        "those are missing, a gap of the matrix, not a verdict on the architecture). A seq2seq row checks the",
        "model's encoder (`model.get_encoder()`), which is what SK-Tuning takes from an encoder-decoder",
        "model (the whole model is refused with that advice). For SK-Prompt and SK-Prefix, each check:",
        "",
        "- **identity / R / L**: the untrained model (identity adapter) equals the backbone reading the",
        f"  text plainly concatenated before the input, within {ATOL:g} on the last hidden state (relative to",
        "  its scale where that exceeds 1; one thread, so every machine rounds alike), for a",
        "  batch of 3 unpadded / padded on the right / padded on the left;",
        "- **train**: three Adam steps on a fixed batch change every trainable tensor and lower the loss;",
        "- **merge**: the merged model's logits equal the unmerged one's;",
        "- **save**: `save_pretrained` then `SKModel.from_pretrained` gives the same logits;",
        "- **generate** (causal LMs): `generate()` through the text equals greedy decoding of the",
        "  concatenated sequence (the whole sequence re-read at each step, no cache), 4 new tokens for each",
        "  row of a left-padded batch (each row alone where the bare backbone does not keep left padding);",
        "- **multi**: a mixed batch of two adapters gives each row what its adapter gives alone.",
        "",
        "✓ holds, ✗ fails (the note says how), R refused with a reason (in the notes), – not applicable",
        "(a padding side the bare backbone itself does not keep: its own output changes with it; identity",
        "for SK-Prefix on a bidirectional encoder, whose text keys and values are read alone by design).",
        "Per mode: *pass*, *partial* (some checks refused, none wrong), *refused* (SK-Tuning declines the",
        "architecture in that mode, with the message in the notes) or *FAIL* (a wrong answer or a crash).",
        "",
        f"Summary: {summary}.",
        "",
        *header(),
        *(render_row(result) for result in results),
        "",
    ]
    PAGE.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    names = argv or architectures()
    results = []
    for arch in names:
        result = row(arch)
        results.append(result)
        print(f"{result['seconds']:5.1f}s {render_row(result)}", flush=True)
    if not argv:
        write_page(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
