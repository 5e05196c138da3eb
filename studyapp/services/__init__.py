"""Study services: plain functions over SQLAlchemy sessions; no Gradio."""
