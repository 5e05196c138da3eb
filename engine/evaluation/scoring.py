"""Scores per task with 95% bootstrap confidence intervals (paper section 4.6: non-parametric bootstrap, 1,000
resamples, 2.5th and 97.5th percentiles), each number with the backend and version that produced it.

The unit of resampling is the sample (one manifest row): corpus metrics (BLEU-4, macro F1) are recomputed on each
resample, per-sample metrics (ROUGE-L, IoU, Dice) are averaged. Which metrics a task gets:

========================================================  ==============================================
task                                                      metrics
========================================================  ==============================================
findings, impression, report, longitudinal, region_caption BLEU-4, ROUGE-L (+ model metrics when configured)
classification, vqa                                       accuracy, macro F1
detection                                                 IoU (per target box, mean over the sample's boxes)
segmentation                                              Dice (per target mask, mean over the sample's masks)
========================================================  ==============================================

A target box without a predicted box of the same class scores IoU 0; a target mask without a predicted mask scores
Dice 0 (a missing answer is a miss, not a skipped row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.stats import bootstrap

from engine.configuration import DET_TOKEN, NA_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.evaluation import geometry, labels, text
from engine.processing import Task, clean_answer

N_RESAMPLES = 1000
CONFIDENCE = 0.95

TEXT_TASKS = (Task.FINDINGS, Task.IMPRESSION, Task.REPORT, Task.LONGITUDINAL, Task.REGION_CAPTION)
LABEL_TASKS = (Task.CLASSIFICATION, Task.VQA)
_TASK_TOKENS = (DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, NA_TOKEN)


@dataclass(frozen=True)
class Prediction:
    """The model's answer to one manifest sample.

    Attributes:
        sample_id: the sample's ``sample_id``.
        text: the answer text (task tokens may be present; they are removed before text scoring).
        boxes: ``(label, normalized xyxy)`` per ``<DET>`` of the answer, in order.
        masks: one binary mask per ``<2DSEG>``/``<3DSEG>`` of the answer, in order, each on the grid of the target
            mask it answers (``(H, W)`` for 2D, the volume's own voxel grid for 3D).
    """

    sample_id: str
    text: str
    boxes: tuple[tuple[str, tuple[float, float, float, float]], ...] = ()
    masks: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class Score:
    """One metric of one task.

    Attributes:
        task: a :class:`engine.processing.Task` value.
        metric: ``bleu4``, ``rouge_l``, ``accuracy``, ``macro_f1``, ``iou``, ``dice`` or a model metric's name.
        value: the metric on all ``n`` samples, in [0, 1].
        ci_low, ci_high: 95% percentile bootstrap interval over samples (``n_resamples`` resamples); NaN when
            ``n < 2``.
        n: samples scored.
        backend: library, version and settings that computed ``value``.
        n_resamples: bootstrap resamples.
    """

    task: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    backend: str
    n_resamples: int = N_RESAMPLES


def _mean(values: np.ndarray) -> float:
    return float(values.mean())


@dataclass(frozen=True)
class TextMetric:
    """A report-text metric computed once per report and combined over any subset of reports, so bootstrap
    resamples only recombine.

    Attributes:
        per_report: ``(references, predictions) -> (N, ...)`` values or sufficient statistics, one row per pair.
        combine: rows of a subset -> the metric (default: their mean; BLEU-4 sums n-gram counts).
    """

    name: str
    backend: str
    per_report: Callable[[Sequence[str], Sequence[str]], Sequence]
    combine: Callable[[np.ndarray], float] = _mean


OFFLINE_TEXT_METRICS = (
    TextMetric("bleu4", text.BLEU_BACKEND, text.bleu4_statistics, text.bleu4_from_statistics),
    TextMetric("rouge_l", text.ROUGE_BACKEND, text.rouge_l_scores),
)


def with_ci(task: str, metric: str, backend: str, n: int, statistic: Callable[[np.ndarray], float],
            n_resamples: int = N_RESAMPLES, seed: int = 0) -> Score:
    """Evaluate ``statistic(indices)`` on ``arange(n)`` and on ``n_resamples`` bootstrap resamples of it
    (``scipy.stats.bootstrap``, percentile method, 95%)."""
    indices = np.arange(n)
    value = float(statistic(indices))
    low = high = float("nan")
    if n >= 2:
        result = bootstrap((indices,), lambda idx: float(statistic(idx)), vectorized=False, method="percentile",
                           n_resamples=n_resamples, confidence_level=CONFIDENCE, rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Score(task, metric, value, low, high, n, backend, n_resamples)


def _text_score(task: str, metric: TextMetric, references: list[str], answers: list[str], n_resamples: int,
                seed: int) -> Score:
    values = np.asarray(metric.per_report(references, answers))
    return with_ci(task, metric.name, metric.backend, len(references), lambda idx: metric.combine(values[idx]),
                   n_resamples, seed)


def _answer_text(answer: str) -> str:
    return clean_answer(answer, _TASK_TOKENS, keep_task_tokens=False)


def _sample_iou(sample, prediction: Prediction) -> float:
    """Mean IoU of the sample's target boxes against the predicted boxes of the same class (in order)."""
    unused = list(prediction.boxes)
    values = []
    for box in sample.boxes:
        wanted = labels.normalize_label(box.label)
        match = next((p for p in unused if labels.normalize_label(p[0]) == wanted), None)
        if match is None:
            values.append(0.0)
            continue
        unused.remove(match)
        values.append(geometry.box_iou(box.xyxy, match[1]))
    return float(np.mean(values))


def _sample_dice(sample, prediction: Prediction, target_masks: Sequence[np.ndarray]) -> float:
    values = [geometry.dice(target, prediction.masks[k]) if k < len(prediction.masks) else 0.0
              for k, target in enumerate(target_masks)]
    return float(np.mean(values))


def score_task(task: str, samples: Sequence, predictions: Sequence[Prediction],
               target_masks: Sequence[Sequence[np.ndarray]] | None = None,
               text_metrics: Sequence[TextMetric] = OFFLINE_TEXT_METRICS,
               n_resamples: int = N_RESAMPLES, seed: int = 0) -> list[Score]:
    """Scores of one task's samples (:class:`engine.data.schema.Sample`) and their predictions (same order).

    Args:
        target_masks: segmentation only: per sample, its target masks as arrays (one per ``sample.masks``).
        text_metrics: metrics for report-text tasks (offline ones by default; model metrics appended by the caller).

    Raises:
        ValueError: lengths differ, a prediction answers another sample, or a detection/segmentation sample has no
            targets.
    """
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions for task {task}")
    for sample, prediction in zip(samples, predictions):
        if sample.sample_id != prediction.sample_id:
            raise ValueError(f"prediction for {prediction.sample_id!r} given in the place of {sample.sample_id!r}")
    task_enum, n = Task(task), len(samples)
    if n == 0:
        return []
    references = [_answer_text(s.answer) for s in samples]
    answers = [_answer_text(p.text) for p in predictions]
    if task_enum in TEXT_TASKS:
        return [_text_score(task, m, references, answers, n_resamples, seed) for m in text_metrics]
    if task_enum in LABEL_TASKS:
        return [with_ci(task, name, labels.BACKEND, n,
                        lambda idx, f=f: f([references[i] for i in idx], [answers[i] for i in idx]), n_resamples, seed)
                for name, f in (("accuracy", labels.accuracy), ("macro_f1", labels.macro_f1))]
    if task_enum is Task.DETECTION:
        missing = [s.sample_id for s in samples if not s.boxes]
        if missing:
            raise ValueError(f"detection samples without target boxes: {missing[:5]}")
        per_sample = np.array([_sample_iou(s, p) for s, p in zip(samples, predictions)])
        return [with_ci(task, "iou", geometry.IOU_BACKEND, n, lambda idx: per_sample[idx].mean(), n_resamples, seed)]
    if task_enum is Task.SEGMENTATION:
        if target_masks is None or len(target_masks) != n:
            raise ValueError("segmentation scoring needs the target masks of every sample")
        per_sample = np.array([_sample_dice(s, p, t) for s, p, t in zip(samples, predictions, target_masks)])
        return [with_ci(task, "dice", geometry.DICE_BACKEND, n, lambda idx: per_sample[idx].mean(), n_resamples, seed)]
    raise ValueError(f"no metric for task {task!r}")
