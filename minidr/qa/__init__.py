"""Quality assessment of a release: metrics, plots, and comparison with simulation truth."""
