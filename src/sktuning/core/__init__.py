"""The method: everything SK-Tuning needs to build, run, save and load a model, and nothing else of
the package (tests/test_layout.py checks that the core imports no other room of sktuning).

    config          SKTuningConfig: the task text, the mode, the adapter, the head
    backbone        the generic interfaces every architecture is reached through
    special_tokens  how the text is tokenized (its start token, once)
    semantic        what the modes share: the text read by the frozen model, the adapter, merging
    prompt, prefix  SK-Prompt (vectors before the input) and SK-Prefix (a key/value prefix per layer)
    authors_prefix  the authors' SK-Prefix (keys and values made by the backbone on every step)
    kv_prefix       the one builder of key/value caches from per-layer tensors
    padding         left-padded batches run right-aligned
    adapters        the trainable adapters (identity at initialisation)
    heads, label_words, metrics  task heads, losses, the label-word head, scores
    generation      greedy and sampled decoding through the text
    model           SKModel, get_sk_model
    adapter_format, adapter_io, atomic  the saved adapter: read without torch, written atomically
    errors, extras, version, home       what every room shares: errors, optional imports, versions, paths
"""
