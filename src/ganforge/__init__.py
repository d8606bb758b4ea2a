"""ganforge: train, watch and judge Generative Adversarial Networks.

``import ganforge`` imports no torch: the configuration and the errors. The library's parts
are imported from their modules (``ganforge.losses.LOSSES``, ``ganforge.train.loop.train``,
``ganforge.evaluation.evaluate_run``, ...; docs/layout.md).
"""

from ganforge.config import PRESETS, Config
from ganforge.errors import ConfigError, DataError, GanforgeError

__version__ = "0.1.0"

__all__ = ["PRESETS", "Config", "ConfigError", "DataError", "GanforgeError"]
