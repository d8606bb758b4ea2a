"""ganforge: train, watch and judge Generative Adversarial Networks."""

from ganforge.config import PRESETS, Config
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.losses import LOSSES

__version__ = "0.1.0"

__all__ = ["LOSSES", "PRESETS", "Config", "ConfigError", "DataError", "GanforgeError"]
