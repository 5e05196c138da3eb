"""ImageNet initialisation from local files. The synthetic files are written from the published layouts
(torchvision ResNet-18; Hugging Face ``microsoft/swin-base-patch4-window7-224``), not from our modules."""

import json

import pytest
import torch
from safetensors.torch import save_file

from engine.checkpoint import CheckpointError
from engine.configuration import MedVersaConfig
from engine.heads.segmentation import GroupNormResNet18Features
from engine.pretrained import load_imagenet_resnet18, load_imagenet_swin
from engine.vision import SwinEncoder2D
from tests.engine.published_layouts import hub_swin_layout, torchvision_resnet18_layout


def _random(shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(7) if s == () else torch.randn(s, generator=generator)) for k, s in shapes.items()}


def test_resnet18_layout_has_the_paper_parameter_count():
    shapes = torchvision_resnet18_layout()
    learned = [s for k, s in shapes.items() if not k.startswith("fc.") and not k.endswith(
        ("running_mean", "running_var", "num_batches_tracked"))]
    assert sum(torch.Size(s).numel() for s in learned) == 11_176_512
    encoder = GroupNormResNet18Features(16)
    assert sum(p.numel() for p in encoder.parameters()) == 11_176_512


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_imagenet_resnet18_loads_strictly(tmp_path, suffix):
    weights = _random(torchvision_resnet18_layout())
    path = tmp_path / f"resnet18{suffix}"
    save_file(weights, path) if suffix == ".safetensors" else torch.save(weights, path)
    encoder = GroupNormResNet18Features(16)
    load_imagenet_resnet18(encoder, path)
    state = encoder.state_dict()
    torch.testing.assert_close(state["conv1.weight"], weights["conv1.weight"])
    torch.testing.assert_close(state["layer3.0.downsample.0.weight"], weights["layer3.0.downsample.0.weight"])
    # BatchNorm scale/shift become the GroupNorm's (paper Fig. 8b: GN with 16 groups)
    assert isinstance(encoder.layer4[1].bn2, torch.nn.GroupNorm) and encoder.layer4[1].bn2.num_groups == 16
    torch.testing.assert_close(state["layer4.1.bn2.bias"], weights["layer4.1.bn2.bias"])
    features = encoder(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [(64, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]


def test_imagenet_resnet18_refuses_other_layouts(tmp_path):
    weights = _random(torchvision_resnet18_layout())
    broken = {k: v for k, v in weights.items() if not k.startswith("layer2.0.downsample")}  # MONAI shortcut "A"
    save_file(broken, tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError, match=r"3 missing key\(s\) \['layer2.0.downsample.0.weight"):
        load_imagenet_resnet18(GroupNormResNet18Features(16), tmp_path / "a.safetensors")
    save_file({**weights, "layer5.0.conv1.weight": torch.zeros(1)}, tmp_path / "b.safetensors")
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\) \['layer5.0.conv1.weight'\]"):
        load_imagenet_resnet18(GroupNormResNet18Features(16), tmp_path / "b.safetensors")
    save_file({**weights, "conv1.weight": torch.zeros(64, 1, 7, 7)}, tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match=r"1 shape mismatch.*conv1.weight"):
        load_imagenet_resnet18(GroupNormResNet18Features(16), tmp_path / "c.safetensors")
    (tmp_path / "d.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="must be .safetensors or a PyTorch"):
        load_imagenet_resnet18(GroupNormResNet18Features(16), tmp_path / "d.ckpt")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_imagenet_resnet18(GroupNormResNet18Features(16), tmp_path / "none.safetensors")


def test_hub_swin_b_layout_has_the_paper_parameter_count():
    shapes = hub_swin_layout(MedVersaConfig.paper_7b().swin)
    learned = sum(torch.Size(v).numel() for k, v in shapes.items()
                  if not k.startswith("classifier.") and not k.endswith("relative_position_index"))
    assert round(learned / 1e6, 1) == 86.7  # Swin-B without its ImageNet head (engine-notes.md)
    with torch.device("meta"):
        encoder = SwinEncoder2D(MedVersaConfig.paper_7b().swin)
    assert sum(p.numel() for p in encoder.parameters()) == learned


def _hub_swin_weights(settings):
    weights = _random({k: v for k, v in hub_swin_layout(settings).items() if not k.endswith("position_index")})
    w = settings.window_size
    for key in hub_swin_layout(settings):
        if key.endswith("relative_position_index"):
            weights[key] = torch.randint(0, (2 * w - 1) ** 2, (w * w, w * w))
    return weights


def test_imagenet_swin_file_and_folder_load_strictly(tmp_path):
    settings = MedVersaConfig.tiny().swin
    weights = _hub_swin_weights(settings)
    save_file(weights, tmp_path / "swin.safetensors")
    encoder = SwinEncoder2D(settings)
    load_imagenet_swin(encoder, tmp_path / "swin.safetensors")
    state = encoder.swin.state_dict()
    torch.testing.assert_close(state["encoder.layers.1.blocks.0.attention.q_proj.weight"],
                               weights["swin.encoder.layers.1.blocks.0.attention.self.query.weight"])
    torch.testing.assert_close(state["encoder.layers.0.blocks.0.mlp.fc2.bias"],
                               weights["swin.encoder.layers.0.blocks.0.output.dense.bias"])
    assert not any(p.requires_grad for p in encoder.parameters())  # still frozen

    folder = tmp_path / "hub"
    folder.mkdir()
    config = {"model_type": "swin", "image_size": 32, "patch_size": 4, "embed_dim": 8, "depths": [1, 1],
              "num_heads": [1, 2], "window_size": 2}
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(weights, folder / "pytorch_model.bin")
    other = SwinEncoder2D(settings)
    load_imagenet_swin(other, folder)
    torch.testing.assert_close(other.swin.state_dict()["layernorm.weight"], weights["swin.layernorm.weight"])

    (folder / "config.json").write_text(json.dumps({**config, "embed_dim": 16}))
    with pytest.raises(CheckpointError, match=r"another architecture.*'embed_dim': \(16, 8\)"):
        load_imagenet_swin(SwinEncoder2D(settings), folder)


def test_imagenet_swin_refuses_missing_and_unknown_keys(tmp_path):
    settings = MedVersaConfig.tiny().swin
    weights = _hub_swin_weights(settings)
    missing = {k: v for k, v in weights.items() if "layers.1.blocks.0.attention.self.key" not in k}
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match=r"2 missing key\(s\).*k_proj"):
        load_imagenet_swin(SwinEncoder2D(settings), tmp_path / "missing.safetensors")
    save_file({**weights, "swin.extra.weight": torch.zeros(2)}, tmp_path / "extra.safetensors")
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\).*extra"):
        load_imagenet_swin(SwinEncoder2D(settings), tmp_path / "extra.safetensors")
