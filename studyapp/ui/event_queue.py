"""Gradio's event queue, set up for a hundred readers autosaving at once (``bench/load.py`` measures it).

Two of Gradio's defaults cost every event time that grows with the traffic:

- After every event the queue recomputes its monitoring summary (a pandas table of the last 10,000 events, grouped
  and with percentiles) in a worker thread; at 20 saves a second that is most of a core once the history has filled.
  The app shows no monitoring dashboard, so the summary is recomputed only every :data:`ANALYTICS_EVERY` events over
  the last :data:`ANALYTICS_EVENTS` (Gradio's ``GRADIO_ANALYTICS_CACHE_FREQUENCY`` and
  ``GRADIO_ANALYTICS_MAX_EVENTS``; a value set in the environment wins).
- ``status_update_rate="auto"`` sends every waiting event its place in the line each time any event starts, so a
  backlog of n events costs n messages per start; the app's events take milliseconds and show no place in a line, so
  estimates go out every :data:`STATUS_UPDATE_S` seconds instead.
"""

import os

import gradio as gr

#: The queue's monitoring summary is recomputed once per this many events...
ANALYTICS_EVERY = 1000
#: ...over at most this many recent events.
ANALYTICS_EVENTS = 1000
#: Seconds between the queue's "place in line" messages to waiting events.
STATUS_UPDATE_S = 5.0


def configure_queue(blocks: gr.Blocks) -> gr.Blocks:
    """Give ``blocks`` (before ``launch`` or mounting) the queue described in this module; returns ``blocks``."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(ANALYTICS_EVERY))
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(ANALYTICS_EVENTS))
    return blocks.queue(status_update_rate=STATUS_UPDATE_S)
