"""Report metrics that need model weights, loaded from a local folder only (nothing is downloaded).

``metrics_dir`` layout (each part optional):

- ``bertscore/``: a Hugging Face encoder folder (``config.json``, tokenizer files, weights), e.g. a saved
  ``distilroberta-base``; BERTScore F1 (``bert-score``) from its last layer (``num_hidden_layers``), no baseline
  rescaling (Zhang et al. 2019, as used by the paper's Table 1 through Yu et al. 2023).
- ``chexbert/``: the published CheXbert labeler checkpoint ``chexbert.pth`` (a ``model_state_dict`` with
  ``module.bert.*`` and ``module.linear_heads.{0..13}.*`` keys) beside a ``bert-base-uncased/`` folder holding its
  ``config.json`` and tokenizer; the score is the CheXbert vector similarity of Yu et al. 2023 (cosine of the
  reports' [CLS] embeddings), the "CheXbert" column of the paper's Table 1.
- RadGraph F1 and RadCliQ (a composite that needs RadGraph) are not computed by this engine: asking for them gives a
  :class:`MetricUnavailable` naming why.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from engine.evaluation.scoring import TextMetric

MODEL_METRICS = ("bertscore", "chexbert", "radgraph", "radcliq")
#: CheXbert's 13 four-class observations and "No Finding" (two classes), in head order (Smit et al. 2020).
CHEXBERT_HEADS = 14


class MetricUnavailable(RuntimeError):
    """A model metric was asked for but cannot be computed (weights missing, unsupported metric)."""


def _check_folder(metrics_dir: Path | None, name: str) -> Path:
    if metrics_dir is None:
        raise MetricUnavailable(f"{name}: no metrics folder configured (pass --metrics-dir DIR with DIR/{name}/)")
    folder = Path(metrics_dir) / name
    if not folder.is_dir():
        raise MetricUnavailable(f"{name}: {folder} does not exist (the weights are never downloaded)")
    return folder


def bertscore_metric(metrics_dir: Path | None, batch_size: int = 16) -> TextMetric:
    """BERTScore F1 (mean over reports) with the encoder in ``metrics_dir/bertscore``.

    Raises:
        MetricUnavailable: the folder is missing or holds no loadable encoder.
    """
    from bert_score import BERTScorer
    from transformers import AutoConfig

    folder = _check_folder(metrics_dir, "bertscore")
    try:
        layers = AutoConfig.from_pretrained(folder, local_files_only=True).num_hidden_layers
        scorer = BERTScorer(model_type=str(folder), num_layers=layers, batch_size=batch_size)
    except (OSError, ValueError) as err:
        raise MetricUnavailable(f"bertscore: {folder} is not a loadable encoder folder: {err}") from err
    backend = f"bert-score {version('bert-score')} F1, encoder {folder.resolve()} layer {layers}, no rescaling"

    def per_report(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
        _, _, f1 = scorer.score(list(predictions), list(references))
        return f1.tolist()

    return TextMetric("bertscore", backend, per_report=per_report)


class CheXbertEncoder(nn.Module):
    """The CheXbert labeler's network (BERT-base + 14 linear heads on [CLS]); only the encoder is used here."""

    def __init__(self, config):
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(config, add_pooling_layer=True)
        sizes = [4] * (CHEXBERT_HEADS - 1) + [2]
        self.linear_heads = nn.ModuleList(nn.Linear(config.hidden_size, k) for k in sizes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` ids and mask -> ``(B, E)`` [CLS] embeddings."""
        return self.bert(input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]


def chexbert_metric(metrics_dir: Path | None, batch_size: int = 16) -> TextMetric:
    """CheXbert vector similarity (mean cosine of [CLS] embeddings) with the checkpoint in ``metrics_dir/chexbert``.

    Raises:
        MetricUnavailable: files missing or unreadable (named), or the checkpoint's keys do not match the CheXbert
            layout (the message names the first missing/unexpected keys).
    """
    from transformers import AutoTokenizer, BertConfig

    from engine.checkpoint import CheckpointError, load_torch_file

    folder = _check_folder(metrics_dir, "chexbert")
    weights, base = folder / "chexbert.pth", folder / "bert-base-uncased"
    for needed in (weights, base):
        if not needed.exists():
            raise MetricUnavailable(f"chexbert: {needed} is missing")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        config = BertConfig.from_pretrained(base, local_files_only=True)
    except (OSError, ValueError) as err:
        raise MetricUnavailable(f"chexbert: cannot load the tokenizer and config in {base}: {err}") from err
    model = CheXbertEncoder(config)
    try:
        state = load_torch_file(weights)
    except CheckpointError as err:
        raise MetricUnavailable(f"chexbert: {err}") from err
    if not isinstance(state, dict):
        raise MetricUnavailable(f"chexbert: {weights} holds a {type(state).__name__}, not a state dict")
    state = state.get("model_state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise MetricUnavailable(f"chexbert: {weights} is not a CheXbert checkpoint "
                                f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()

    @torch.no_grad()
    def embed(texts: Sequence[str]) -> torch.Tensor:
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=min(512, config.max_position_embeddings), return_tensors="pt")
            parts.append(model(batch["input_ids"], batch["attention_mask"]))
        return torch.cat(parts)

    def per_report(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
        return nn.functional.cosine_similarity(embed(references), embed(predictions), dim=1).tolist()

    backend = f"CheXbert vector similarity ({weights.resolve()}), transformers {version('transformers')}"
    return TextMetric("chexbert", backend, per_report=per_report)


def model_metric(name: str, metrics_dir: Path | None) -> TextMetric:
    """The model metric ``name`` (one of :data:`MODEL_METRICS`).

    Raises:
        MetricUnavailable: weights missing, or RadGraph/RadCliQ (not computed by this engine).
        ValueError: an unknown metric name.
    """
    if name == "bertscore":
        return bertscore_metric(metrics_dir)
    if name == "chexbert":
        return chexbert_metric(metrics_dir)
    if name in ("radgraph", "radcliq"):
        raise MetricUnavailable(f"{name}: not computed by this engine (RadGraph's DyGIE++ entity-relation model has "
                                "no offline loader here; RadCliQ combines RadGraph F1 with the other metrics)")
    raise ValueError(f"unknown model metric {name!r}; known: {list(MODEL_METRICS)}")
