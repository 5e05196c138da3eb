"""Evaluation metrics on constructed answers with known values (issue 8 item 6), on real IU report text."""

import math

import numpy as np
import pytest

from engine.evaluation import geometry, labels, text
from engine.evaluation.scoring import Prediction, score_task
from engine.data.schema import BoxTarget, ImageRef, MaskTarget, Sample
from tests.engine.conftest import iu_reports


@pytest.fixture(scope="module")
def reports(shared_data):
    return [f"{r['FINDINGS']} {r['IMPRESSION']}" for r in iu_reports(shared_data, 40)]


def sample(sample_id, task, answer, boxes=(), masks=(), imaging="chest_xray"):
    return Sample(sample_id, "test", task, imaging, (ImageRef("unused.png", imaging),), "Describe <img0>.", answer,
                  boxes=tuple(boxes), masks=tuple(masks))


def test_identical_report_bleu_and_rouge_are_one(reports):
    assert text.bleu4(reports, reports) == pytest.approx(1.0)
    assert text.rouge_l_scores(reports, reports) == pytest.approx([1.0] * len(reports))


def test_unrelated_report_scores_low_and_truncation_is_penalised(reports):
    shifted = reports[1:] + reports[:1]
    assert text.bleu4(reports, shifted) < 0.3
    halves = [" ".join(r.split()[: len(r.split()) // 2]) for r in reports]
    bleu_half = text.bleu4(reports, halves)
    assert 0.2 < bleu_half < 0.8  # every n-gram matches; only the brevity penalty lowers it
    assert bleu_half == pytest.approx(math.exp(1 - sum(len(text.words(r)) for r in reports)
                                               / sum(len(text.words(h)) for h in halves)), rel=1e-6)


def test_box_shifted_by_half_its_width_has_iou_one_third():
    assert geometry.box_iou((0.2, 0.3, 0.4, 0.7), (0.3, 0.3, 0.5, 0.7)) == pytest.approx(1 / 3, abs=1e-6)
    assert geometry.box_iou((0.0, 0.0, 0.1, 0.1), (0.5, 0.5, 0.6, 0.6)) == 0.0
    with pytest.raises(ValueError, match="not ordered xyxy"):
        geometry.box_iou((0.4, 0.3, 0.2, 0.7), (0.3, 0.3, 0.5, 0.7))
    with pytest.raises(ValueError, match="4 finite numbers"):
        geometry.box_iou((0.1, 0.2, 0.3), (0.3, 0.3, 0.5, 0.7))


def test_mask_against_itself_has_dice_one_and_half_overlap_known(shared_data):
    from PIL import Image

    mask = np.asarray(Image.open(shared_data / "derm" / "masks" / "ISIC_0024311.png").convert("L")) > 127
    assert mask.sum() > 1000
    assert geometry.dice(mask, mask) == 1.0
    half = mask.copy()
    rows = np.nonzero(mask.any(axis=1))[0]
    half[rows[len(rows) // 2]:] = False
    expected = 2 * half.sum() / (mask.sum() + half.sum())
    assert geometry.dice(mask, half) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        geometry.dice(mask, mask[:-1])


def test_labels_accuracy_and_macro_f1():
    refs = ["Melanocytic nevus.", "melanoma", "basal cell carcinoma", "melanoma"]
    preds = ["melanocytic nevus", "melanoma", "melanoma", "melanoma"]
    assert labels.accuracy(refs, preds) == 0.75
    # per class F1: nevus 1, melanoma 2*1*(2/3)/(1+2/3)=0.8, bcc 0 -> mean 0.6
    assert labels.macro_f1(refs, preds) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        labels.accuracy(refs[:2], preds[:1])


def test_score_task_report_ci_and_provenance(reports):
    samples = [sample(f"s{i}", "report", r) for i, r in enumerate(reports)]
    noisy = [r if i % 2 else reports[(i + 1) % len(reports)] for i, r in enumerate(reports)]
    scores = {s.metric: s for s in score_task("report", samples, [Prediction(s.sample_id, t) for s, t in
                                                                  zip(samples, noisy)], n_resamples=200)}
    assert set(scores) == {"bleu4", "rouge_l"}
    for s in scores.values():
        assert s.ci_low <= s.value <= s.ci_high and s.ci_low < s.ci_high
        assert s.n == len(reports) and s.n_resamples == 200
    assert scores["bleu4"].backend.startswith("nltk 3.")
    assert scores["rouge_l"].backend.startswith("rouge-score 0.1.2")
    # half the reports are exact copies: ROUGE-L mean lies between 0.5 and 1
    assert 0.5 < scores["rouge_l"].value < 1.0


def test_score_task_detection_matches_by_class_and_counts_misses():
    target = sample("d0", "detection", "heart <DET>. nodule <DET>.",
                    boxes=[BoxTarget("heart", (0.2, 0.3, 0.4, 0.7)), BoxTarget("nodule", (0.6, 0.6, 0.7, 0.7))])
    predicted = Prediction("d0", "nodule <N/A>. heart <DET>.", boxes=(("heart", (0.3, 0.3, 0.5, 0.7)),))
    (score,) = score_task("detection", [target], [predicted])
    assert score.metric == "iou" and score.value == pytest.approx((1 / 3 + 0.0) / 2, abs=1e-6)
    assert math.isnan(score.ci_low)  # one sample: no interval


def test_score_task_segmentation_dice_and_missing_mask():
    grid = np.zeros((8, 8), bool)
    grid[2:6, 2:6] = True
    samples = [sample(f"m{i}", "segmentation", "The segmentation mask of lesion is <2DSEG>.",
                      masks=[MaskTarget("unused.png", "lesion")], imaging="dermoscopy") for i in range(2)]
    predictions = [Prediction("m0", "...", masks=(grid,)), Prediction("m1", "...")]
    (score,) = score_task("segmentation", samples, predictions, target_masks=[[grid], [grid]])
    assert score.value == pytest.approx(0.5)
    assert score.ci_low == pytest.approx(0.0) and score.ci_high == pytest.approx(1.0)


def test_score_task_refuses_misaligned_predictions(reports):
    samples = [sample("a", "report", reports[0]), sample("b", "report", reports[1])]
    with pytest.raises(ValueError, match="prediction for 'b' given in the place of 'a'"):
        score_task("report", samples, [Prediction("b", ""), Prediction("a", "")])
    with pytest.raises(ValueError, match="2 samples but 1 predictions"):
        score_task("report", samples, [Prediction("a", "")])


def test_bleu_from_statistics_equals_nltk_corpus_bleu_on_subsets(reports):
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    predictions = [" ".join(r.split()[:-3]) if i % 3 else reports[(i + 5) % len(reports)]
                   for i, r in enumerate(reports)]
    statistics = text.bleu4_statistics(reports, predictions)
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, len(reports), len(reports))
        expected = corpus_bleu([[text.words(reports[i])] for i in idx], [text.words(predictions[i]) for i in idx],
                               smoothing_function=SmoothingFunction().method1)
        assert text.bleu4_from_statistics(statistics[idx]) == pytest.approx(expected, rel=1e-12)
    assert text.bleu4(["no acute process"], ["pleural effusion"]) == 0.0
