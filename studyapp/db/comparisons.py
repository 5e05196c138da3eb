"""Blinded A/B comparison models (filled in by the comparisons work)."""
