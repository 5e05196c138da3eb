"""Gradio user interface: one module per tab, handlers that call services, ``gr.State`` holding ids only."""
