"""MedVersa engine: a reimplementation of the MedVersa generalist medical AI (paper sections 4.2-4.4).

A causal language model (the orchestrator) reads images through vision encoders and adapters spliced into its
prompt ("referring image instructions"), answers in text, and emits task tokens (``<DET>``, ``<2DSEG>``,
``<3DSEG>``) whose last-layer hidden states prompt the detection and segmentation heads.

Shape letters used in every docstring of this package:
``B`` batch, ``C`` channels, ``H, W`` image height/width, ``D`` volume depth (slices), ``L`` token sequence
length, ``E`` embedding width (the LLM hidden size), ``N`` number of images, ``K`` number of task tokens.

Modules: :mod:`engine.configuration` (composite config), :mod:`engine.vision` (2D/3D encoders),
:mod:`engine.heads` (detection, 2D/3D segmentation), :mod:`engine.modeling` (adapters, backbone, model with
losses), :mod:`engine.processing` (tokenizer, prompts, image transforms), :mod:`engine.inference`
(:class:`engine.inference.MedVersa`), :mod:`engine.checkpoint` (save/load, released-checkpoint converter),
:mod:`engine.tiny` (tiny random model), :mod:`engine.drafts` (reader-study drafts), :mod:`engine.data`
(manifests, adapters, loading, domain-aware sampler, collate), :mod:`engine.training` with
:mod:`engine.training_config` (the accelerate training loop; CLI ``python -m engine.train``),
:mod:`engine.pretrained` and :mod:`engine.initialize` (ImageNet backbones; a starting checkpoint from a base LM),
:mod:`engine.evaluation` (metrics with bootstrap CIs; CLI ``python -m engine.evaluate``).
"""

import logging as _logging
import warnings as _warnings


class _Once(_logging.Filter):
    """Lets each distinct message of a logger through once per process."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: _logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _quiet_known_warnings() -> None:
    """Known library notices that every image load or step would repeat: MONAI's "nvImageCodec is not available"
    (a GPU JPEG decoder this CPU setup does not have; pydicom's own decoders are used) and its reader's fallback
    warning are shown once per process."""
    _logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").addFilter(_Once())
    _warnings.filterwarnings("once", message=r"NvImgCodecPydicomReader: nvImageCodec", category=UserWarning)


_quiet_known_warnings()
