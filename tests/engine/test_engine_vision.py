import torch

from engine.configuration import MedVersaConfig, SwinSettings
from engine.vision import SwinEncoder2D


def test_frozen_swin_gives_the_same_features_in_train_and_eval_mode():
    """A frozen encoder is a fixed feature extractor: no stochastic depth, no train-mode behaviour."""
    settings = MedVersaConfig.tiny().swin  # 2 blocks: the second had drop-path 0.1 with SwinConfig's default
    torch.manual_seed(0)
    encoder = SwinEncoder2D(settings).train()
    assert encoder.training and not encoder.swin.training
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        first, second = encoder(images), encoder(images)
        evaluated = encoder.eval()(images)
    assert first.shape == (4, 16, 4, 4)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, evaluated, rtol=0, atol=0)
    assert encoder.swin.config.drop_path_rate == 0.0


def test_trainable_swin_follows_the_mode():
    settings = MedVersaConfig.tiny().swin
    encoder = SwinEncoder2D(SwinSettings(**{**settings.__dict__, "frozen": False}))
    assert encoder.train().swin.training
    assert not encoder.eval().swin.training
    assert all(p.requires_grad for p in encoder.parameters())
