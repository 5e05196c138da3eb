"""Reader-study analysis (placeholder package docstring, replaced by the analysis work)."""
