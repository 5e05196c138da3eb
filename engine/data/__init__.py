"""Training data for MedVersa (paper 4.1 MedInterp, 4.3 instructions and domain-aware minibatches, 4.4 implementation details).

:mod:`engine.data.schema` (one sample: images, instruction, answer with task tokens, box and mask targets),
:mod:`engine.data.manifest` (JSONL manifests, validated on read), :mod:`engine.data.loading` (a sample ->
model-ready tensors, with the paper's augmentations), :mod:`engine.data.sampler` (domain-aware minibatches),
:mod:`engine.data.adapters` (public datasets -> manifests). Command line: ``python -m engine.data check|convert``.
"""
