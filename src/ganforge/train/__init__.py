"""Training: the pure step (``step.py``) and the loop with its run folder (``loop.py``)."""
