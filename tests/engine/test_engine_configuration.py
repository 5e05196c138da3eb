import json

import pytest

from engine.configuration import BoxActivation, MedVersaConfig, UNet3DSettings


def test_paper_7b_values():
    config = MedVersaConfig.paper_7b()
    assert config.hidden_size == 4096
    assert config.num_visual_tokens == 9
    assert config.swin.out_channels == 1024
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (16, 16, 0.1)
    assert config.lora.target_modules == ("q_proj", "v_proj")
    assert config.unet3d.volume_size == (64, 192, 192)
    # released code and weights (engine-notes.md): raw box outputs, 100 x SmoothL1
    assert (config.detection.hidden, config.detection.box_activation) == (256, BoxActivation.NONE)
    assert config.losses.box == 100.0


def test_save_load_round_trip(tmp_path):
    config = MedVersaConfig.tiny()
    config.token_ids = {"<DET>": 7}
    config.save(tmp_path)
    loaded = MedVersaConfig.load(tmp_path)
    assert loaded == config
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["unet3d"]["volume_size"] == [16, 48, 48]
    assert stored["detection"] == {"hidden": 16, "box_activation": "none"}
    stored["detection"]["box_activation"] = "sigmoid"
    assert MedVersaConfig.from_dict(stored).detection.box_activation is BoxActivation.SIGMOID


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"unet3d": UNet3DSettings(channels=(4, 8, 8, 8, 12), num_groups=8)}, "does not divide"),
        ({"unet3d": UNet3DSettings(volume_size=(20, 48, 48), channels=(4, 8, 8, 8, 8), num_groups=2)}, "divisible by 16"),
        ({"visual_grid": (0, 3)}, "visual_grid"),
    ],
)
def test_bad_options_fail_with_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MedVersaConfig(**kwargs)


def test_unknown_key_and_missing_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 32, "hiden": 1}))
    with pytest.raises(ValueError, match="hiden"):
        MedVersaConfig.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        MedVersaConfig.load(tmp_path / "nowhere")
