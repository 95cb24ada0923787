"""The semantic modes by name: the one place a config picks the module that joins its text to the inputs."""

from __future__ import annotations

import torch
from torch import nn

from sktuning.core.authors_prefix import AuthorsPrefix
from sktuning.core.config import AUTHORS_KINDS, SKTuningConfig
from sktuning.core.prefix import SemanticPrefix
from sktuning.core.prompt import SemanticPrompt
from sktuning.core.semantic import SemanticText

#: each `SKTuningConfig.mode`'s semantic-text module (the authors' adapter kinds have their own SK-Prefix)
MODES: dict[str, type[SemanticText]] = {"prompt": SemanticPrompt, "prefix": SemanticPrefix}


def semantic_text(backbone: nn.Module, text_input_ids: torch.Tensor, config: SKTuningConfig) -> SemanticText:
    """The semantic-text module `config` asks for, built on `backbone` (which it checks can take it)."""
    mode = AuthorsPrefix if config.adapter in AUTHORS_KINDS else MODES[config.mode]
    return mode(backbone, text_input_ids, config)
