"""Model-based report metrics from local folders only: BERTScore and CheXbert vector similarity with tiny random
encoders written to a temp dir in the published layouts; clear errors when weights are missing or wrong."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from engine.evaluation.model_metrics import CheXbertEncoder, MetricUnavailable, model_metric
from tests.engine.conftest import iu_reports


def write_tiny_bert(folder, texts, initializer_range=0.02):
    """A WordPiece tokenizer trained on ``texts`` and a 2-layer random BERT, saved in Hugging Face layout."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    fast.save_pretrained(folder)
    config = BertConfig(vocab_size=fast.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128,
                        initializer_range=initializer_range)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return config


@pytest.fixture(scope="module")
def reports(shared_data):
    return [f"{r['FINDINGS']} {r['IMPRESSION']}" for r in iu_reports(shared_data, 12)]


def test_bertscore_from_local_folder(tmp_path, reports):
    write_tiny_bert(tmp_path / "bertscore", reports)
    metric = model_metric("bertscore", tmp_path)
    same = metric.per_report(reports[:4], reports[:4])
    assert same == pytest.approx([1.0] * 4, abs=1e-5)
    other = metric.per_report(reports[:4], reports[4:8])
    assert all(v < 0.999 for v in other)
    assert "bert-score 0.3.13" in metric.backend and "layer 2" in metric.backend


def test_chexbert_checkpoint_in_published_layout(tmp_path, reports):
    folder = tmp_path / "chexbert"
    config = write_tiny_bert(folder / "bert-base-uncased", reports, initializer_range=1.0)  # [CLS] varies
    network = CheXbertEncoder(config)
    state = {f"module.{k}": v for k, v in network.state_dict().items()}  # saved from nn.DataParallel
    torch.save({"model_state_dict": state, "epoch": 8}, folder / "chexbert.pth")
    metric = model_metric("chexbert", tmp_path)
    assert metric.per_report(reports[:3], reports[:3]) == pytest.approx([1.0] * 3, abs=1e-5)
    assert len(set(round(v, 6) for v in metric.per_report(reports[:3], reports[3:6]))) == 3

    torch.save({"model_state_dict": {k: v for k, v in state.items() if "linear_heads.13" not in k}},
               folder / "chexbert.pth")
    with pytest.raises(MetricUnavailable, match="not a CheXbert checkpoint.*linear_heads.13"):
        model_metric("chexbert", tmp_path)


@pytest.mark.parametrize("name, metrics_dir, message", [
    ("bertscore", None, "no metrics folder configured"),
    ("bertscore", "empty", "does not exist"),
    ("chexbert", "empty", "does not exist"),
    ("radgraph", "empty", "not computed by this engine"),
    ("radcliq", None, "RadCliQ combines RadGraph"),
])
def test_missing_metric_models_give_clear_messages(tmp_path, name, metrics_dir, message):
    with pytest.raises(MetricUnavailable, match=message):
        model_metric(name, None if metrics_dir is None else tmp_path / metrics_dir)


def test_unknown_metric_name():
    with pytest.raises(ValueError, match="unknown model metric 'bleu'"):
        model_metric("bleu", None)


def test_junk_chexbert_folder_is_unavailable_not_an_error(tmp_path, reports):
    folder = tmp_path / "chexbert"
    (folder / "bert-base-uncased").mkdir(parents=True)
    (folder / "chexbert.pth").write_text("not a torch file")
    with pytest.raises(MetricUnavailable, match=f"chexbert: cannot load the tokenizer and config in "
                                                f"{folder / 'bert-base-uncased'}: "):
        model_metric("chexbert", tmp_path)
    write_tiny_bert(folder / "bert-base-uncased", reports)
    with pytest.raises(MetricUnavailable,
                       match=f"chexbert: {folder / 'chexbert.pth'} is refused: not a file of tensors"):
        model_metric("chexbert", tmp_path)
