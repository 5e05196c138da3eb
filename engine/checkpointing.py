"""Activation (gradient) checkpointing of the engine's own vision blocks, in the ``transformers`` convention.

A module with :class:`CheckpointedBlocks` runs its repeated blocks through ``_gradient_checkpointing_func`` (a
``torch.utils.checkpoint.checkpoint`` partial) when ``gradient_checkpointing`` is on, the module is training and
autograd is recording: their activations are recomputed in the backward pass instead of stored. The attribute
names are those ``transformers.PreTrainedModel`` sets on its layers, so one switch
(:meth:`engine.modeling.MedVersaModel.activation_checkpointing_enable`) covers the LLM and these blocks alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class CheckpointedBlocks:
    """Mixin for an ``nn.Module`` whose ``forward`` calls its blocks through :meth:`run_block`."""

    gradient_checkpointing: bool = False
    _gradient_checkpointing_func: Callable | None = None

    def run_block(self, block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        """``block(*args)``, checkpointed when switched on and training with autograd recording."""
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(block.__call__, *args)
        return block(*args)
