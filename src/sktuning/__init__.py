"""sktuning: Semantic Knowledge Tuning (SK-Prompt, SK-Prefix) for any Hugging Face model."""

__version__ = "0.1.0"

from sktuning.adapters import ADAPTERS, build_adapter  # noqa: E402
from sktuning.config import SKTuningConfig  # noqa: E402
from sktuning.model import SKModel, SKModelOutput, get_sk_model  # noqa: E402
from sktuning.predict import Predictions, predict  # noqa: E402

__all__ = ["ADAPTERS", "Predictions", "SKModel", "SKModelOutput", "SKTuningConfig", "build_adapter", "get_sk_model",
           "predict", "__version__"]
