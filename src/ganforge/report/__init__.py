"""Pictures of a run: sample grids and training curves."""
