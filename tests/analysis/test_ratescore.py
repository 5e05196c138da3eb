"""RaTEScore template use from a local folder: tiny random DeBERTa-v2 NER and BERT encoder models with a WordPiece
tokenizer trained here (no hub), the hand-computed directed score, and the clear errors for broken folders."""

import json
import shutil

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (BertConfig, BertModel, DebertaV2Config, DebertaV2ForTokenClassification,
                          PreTrainedTokenizerFast)

from analysis import analyse_frames
from analysis.ratescore import AFFINITY, ENTITY_TYPES, NEGATION_WEIGHT, NO_ENTITY_SCORE, directed_score, load_ratescore
from analysis.similarity import MEASURE, template_use_measure
from analysis.simulation import simulate_study

REPORTS = [
    "No pneumothorax or pleural effusion. Heart size is normal.",
    "Mild cardiomegaly. Right lower lobe consolidation, concerning for pneumonia.",
    "Heart size normal. Lungs are clear. No acute cardiopulmonary abnormality.",
    "Small left pleural effusion with adjacent atelectasis. Stable mediastinal contours.",
]
LABELS = ["O"] + [f"{bio}-{entity_type}" for entity_type in ENTITY_TYPES for bio in "BI"]


def _tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(REPORTS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)


def _write_models(folder, only_label=None):
    """Tiny random models in ``folder/ner`` and ``folder/encoder``; ``only_label`` forces every token to that label."""
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    sizes = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    ner = DebertaV2ForTokenClassification(DebertaV2Config(
        **sizes, id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)}))
    if only_label is not None:
        with torch.no_grad():
            ner.classifier.weight.zero_()
            ner.classifier.bias.fill_(0.0)
            ner.classifier.bias[LABELS.index(only_label)] = 10.0
    encoder = BertModel(BertConfig(**sizes))
    for sub, model in (("ner", ner), ("encoder", encoder)):
        model.save_pretrained(folder / sub)
        tokenizer.save_pretrained(folder / sub)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _write_models(tmp_path_factory.mktemp("ratescore"))


@pytest.fixture(scope="module")
def scorer(model_dir):
    return load_ratescore(model_dir, device="cpu")


def test_directed_score_by_hand():
    # source: 2 entities; entity 0 matches target 0 (cos 1), entity 1 matches target 1 (cos 0.6) of a negated type
    source = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    target = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    w0, w1 = AFFINITY[("ANATOMY", "ANATOMY")], AFFINITY[("ABNORMALITY", "NON-ABNORMALITY")]
    expected = (1.0 * w0 + 0.8 * w1 * NEGATION_WEIGHT) / (w0 + w1)
    got = directed_score(source, target, ["ANATOMY", "ABNORMALITY"], ["ANATOMY", "NON-ABNORMALITY"])
    assert got == pytest.approx(expected)
    # a negative cosine counts as no similarity
    assert directed_score(torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]]), ["DISEASE"], ["DISEASE"]) == 0.0


def test_entities_have_ratener_types(scorer):
    entities = scorer.entities(REPORTS)
    assert len(entities) == len(REPORTS) and all(entities)
    assert {e.type for report in entities for e in report} <= set(ENTITY_TYPES)
    words = " ".join(REPORTS).lower()
    assert all(e.text and e.text.split()[0].strip(".,") in words for report in entities for e in report)


def test_identical_reports_score_one_and_scores_are_symmetric_in_range(scorer):
    entities = scorer.entities(REPORTS)
    # identical reports reach 1.0 when every entity text has one type (else a tie may pick a same-text entity of
    # another type, as in the reference package)
    unambiguous = [r for r, found in zip(REPORTS, entities)
                   if len({e.text for e in found}) == len({(e.text, e.type) for e in found})]
    assert unambiguous
    assert scorer.score(unambiguous, unambiguous) == pytest.approx([1.0] * len(unambiguous), abs=1e-6)
    candidates, references = REPORTS, REPORTS[1:] + REPORTS[:1]
    forward, backward = scorer.score(candidates, references), scorer.score(references, candidates)
    assert forward == pytest.approx(backward)
    assert all(0.0 <= s <= 1.0 for s in forward)
    assert len(set(forward)) > 1


def test_no_entity_gives_half(tmp_path):
    scorer = load_ratescore(_write_models(tmp_path, only_label="O"), device="cpu")
    assert scorer.score(REPORTS[:2], REPORTS[1:3]) == [NO_ENTITY_SCORE, NO_ENTITY_SCORE]
    with pytest.raises(ValueError, match="2 candidates but 1 references"):
        scorer.score(REPORTS[:2], REPORTS[:1])
    with pytest.raises(TypeError, match="NoneType"):
        scorer.score([None], ["x"])


def test_template_use_measure_records_its_name(model_dir):
    measure = template_use_measure(model_dir)
    assert measure.name == f"RaTEScore ({model_dir.resolve()})"
    assert measure.score(REPORTS[:1], REPORTS[:1]) == pytest.approx([1.0], abs=0.05)
    rouge = template_use_measure()
    assert rouge.name == MEASURE
    assert rouge.score(["a b c d"], ["a b x y"]) == pytest.approx([0.5])


def test_analysis_records_ratescore(model_dir):
    result = analyse_frames(simulate_study(n_readers=4, n_cases=6, seed=2), None, n_resamples=20,
                            ratescore_dir=model_dir)
    readings = result.tables["readings"]
    assert result.similarity_measure == f"RaTEScore ({model_dir.resolve()})"
    assert set(readings["similarity_measure"]) == {result.similarity_measure}
    assert readings["template_use"].between(0.0, 1.0).all() and readings["template_use"].nunique() > 1


def _broken(model_dir, tmp_path, breaker):
    folder = tmp_path / "broken"
    shutil.copytree(model_dir, folder)
    breaker(folder)
    return folder


def _relabel(folder):
    config = json.loads((folder / "ner" / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B-DRUG"}
    config["label2id"] = {"O": 0, "B-DRUG": 1}
    (folder / "ner" / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("breaker, message", [
    (lambda f: shutil.rmtree(f / "encoder"), r"lacks encoder/config.json"),
    (lambda f: (f / "ner" / "config.json").unlink(), r"lacks ner/config.json"),
    (lambda f: (f / "encoder" / "model.safetensors").unlink(), r"encoder model in .*encoder cannot be loaded"),
    (lambda f: (f / "ner" / "tokenizer.json").unlink(), r"NER tokenizer in .*ner cannot be loaded"),
    (_relabel, r"labels \['B-DRUG'\] outside O and B-/I-"),
])
def test_broken_folder_is_a_clear_error(model_dir, tmp_path, breaker, message):
    folder = _broken(model_dir, tmp_path, breaker)
    with pytest.raises(ValueError, match=message):
        load_ratescore(folder)
    with pytest.raises(ValueError, match=message):
        analyse_frames(simulate_study(n_readers=2, n_cases=2), None, ratescore_dir=folder)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        template_use_measure(tmp_path / "nowhere")
