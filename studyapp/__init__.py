"""Reader-study platform: DICOM worklist, draft editing with timing, Likert ratings, blinded comparisons.

Layers: ``db`` (SQLAlchemy models and sessions), ``dicom`` (ingest and display), ``services`` (study
logic, no Gradio), ``ui`` (Gradio tabs calling services).
"""
