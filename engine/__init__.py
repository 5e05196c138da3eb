"""MedVersa engine (placeholder package docstring, replaced by the engine work)."""
