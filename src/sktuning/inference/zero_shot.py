"""Zero-shot scoring: the untrained label-word model, the floor every few-shot result starts from.

With the identity adapter the model is the backbone reading text + input + answer template, and the
label-word head's class scores are the backbone's own next-token logits of each label's words. A small
model's scores carry each word's prior, which can swamp the input; `calibrate_to_content_free` shifts
the head's bias so that inputs with no content ("N/A", "[MASK]") score every label alike (Zhao et
al. 2021, "Calibrate before use": there the probabilities are rescaled; here the head's pre-transform
scores are shifted, which makes the content-free scores exactly equal even where the backbone soft-caps
its logits, and leaves a trainable head that starts calibrated).

    >>> model = zero_shot_model(causal_lm, tokenizer, task_config(data, tokenizer, head="label-words"),
    ...                         calibrate=True)
    >>> predict(model.merge(), tokenizer, ["a gorgeous, witty film"]).records[0]["label"]
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import torch
import torch.nn.functional as F

from sktuning.core.config import SKTuningConfig
from sktuning.data.encoding import InputEncoder
from sktuning.core.heads import pool
from sktuning.core.model import SKModel, get_sk_model

#: inputs with no content, averaged for calibration (two of Zhao et al.'s three; the empty input has no token)
CONTENT_FREE = ("N/A", "[MASK]")


def zero_shot_model(backbone, tokenizer, config: SKTuningConfig, calibrate: bool = False) -> SKModel:
    """The untrained label-word SK model of `config` (adapter at the identity), optionally calibrated."""
    if config.head != "label-words":
        raise UsageError("Zero-shot scoring needs head='label-words' (a linear head starts random, at chance); "
                         "build the config with task_config(data, tokenizer, head='label-words').")
    model = get_sk_model(backbone, tokenizer, config)
    if calibrate:
        calibrate_to_content_free(model, tokenizer)
    return model.eval()


@torch.no_grad()
def calibrate_to_content_free(model: SKModel, tokenizer, texts: tuple[str, ...] = CONTENT_FREE) -> torch.Tensor:
    """Shift the label-word head's bias so that the content-free `texts`, averaged, score every label alike.

    Returns the shift applied, (num_labels,). The head computes transform(W h + b) with one monotone
    transform for every label, so equal W h + b gives equal class scores."""
    if model.sk_config.head != "label-words":
        raise UsageError("Calibration applies to the label-word head (head='label-words').")
    encoder = InputEncoder.for_model(model, tokenizer)
    batch = encoder.collate(encoder.encode([{"text": text} for text in texts], "content-free inputs"))
    batch.pop("word_ids", None)
    head, scores = model.head, []

    def keep_scores(module, args, _output) -> None:  # the head's affine scores, before its transform
        hidden, mask = args
        scores.append(F.linear(pool(hidden, mask, module.pooling).to(module.weight.dtype), module.weight, module.bias))

    was_training = model.training
    model.eval()
    hook = head.register_forward_hook(keep_scores)
    try:
        model(**{k: v.to(head.weight.device) for k, v in batch.items()})
    finally:
        hook.remove()
        model.train(was_training)
    mean = scores[0].float().mean(0)
    shift = mean - mean.mean()
    head.bias.sub_(shift.to(head.bias.dtype))
    return shift
