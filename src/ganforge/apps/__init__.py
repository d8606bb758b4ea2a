"""The course's applications as image-to-image GANs (docs/applications.md): super-resolution
(``sr``), colourisation (``colorize``) and unpaired style transfer (``thicken``): their steps,
training, evaluation against baselines and ``ganforge translate``."""
