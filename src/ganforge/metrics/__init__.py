"""Measures of a generator: pure functions on samples and features (the feature network is
passed in), and the evaluation of a run folder built on them."""
