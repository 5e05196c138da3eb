"""``python -m engine.initialize``: a starting checkpoint from a base LM folder and ImageNet files (tiny sizes)."""

import pytest
import torch
from safetensors.torch import save_file

from engine import initialize
from engine.checkpoint import load_checkpoint
from tests.engine.published_layouts import torchvision_resnet18_layout


@pytest.fixture()
def resnet18_file(tmp_path):
    torch.manual_seed(1)
    weights = {k: torch.randn(shape) if shape else torch.tensor(0) for k, shape in torchvision_resnet18_layout().items()}
    save_file(weights, tmp_path / "resnet18.safetensors")
    return tmp_path / "resnet18.safetensors", weights


def test_initialize_loads_the_lm_and_imagenet_resnet18(tmp_path, tiny_checkpoint, resnet18_file, capsys):
    path, weights = resnet18_file
    out = tmp_path / "init"
    initialize.main(["--llm", str(tiny_checkpoint / "llm"), "--tokenizer", str(tiny_checkpoint), "--config", "tiny",
                     "--resnet18", str(path), "--out", str(out)])
    assert "starting checkpoint written" in capsys.readouterr().out
    model, tokenizer = load_checkpoint(out)
    assert torch.equal(model.seg2d_head.encoder.state_dict()["conv1.weight"], weights["conv1.weight"])
    base, _ = load_checkpoint(tiny_checkpoint)
    embed = model.backbone.llm.get_input_embeddings().weight
    assert torch.equal(embed[:100], base.backbone.llm.get_input_embeddings().weight[:100])  # base LM rows kept
    assert model.config.llm_path == str((tiny_checkpoint / "llm").resolve())
    assert tokenizer.convert_tokens_to_ids("<DET>") == model.config.token_ids["<DET>"]


def test_initialize_refuses_wrong_inputs(tmp_path, tiny_checkpoint, capsys):
    with pytest.raises(SystemExit, match="hidden size 32 but the MedVersa config expects 4096"):
        initialize.main(["--llm", str(tiny_checkpoint / "llm"), "--tokenizer", str(tiny_checkpoint),
                         "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit) as usage:
        initialize.main(["--llm", str(tmp_path / "missing"), "--out", str(tmp_path / "b")])
    assert usage.value.code == 2 and "missing: no such folder" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="cannot load a tokenizer"):
        initialize.main(["--llm", str(tiny_checkpoint / "llm"), "--config", "tiny", "--out", str(tmp_path / "c")])
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(SystemExit, match="ImageNet ResNet-18"):
        initialize.main(["--llm", str(tiny_checkpoint / "llm"), "--tokenizer", str(tiny_checkpoint), "--config",
                         "tiny", "--resnet18", str(bad), "--out", str(tmp_path / "d")])
