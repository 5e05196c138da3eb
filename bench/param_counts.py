"""Parameter counts per part of the paper's 7B MedVersa (Llama-2-7B geometry), built on the meta device.

No weights are needed and no memory is used: the model is built from configurations only
(``LlamaConfig`` with Llama-2-7B's sizes and the 5 added tokens, :meth:`MedVersaConfig.paper_7b`), LoRA attached.

Usage: ``python bench/param_counts.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.configuration import ADDED_TOKENS, MedVersaConfig  # noqa: E402
from engine.modeling import MedVersaModel, attach_lora  # noqa: E402

LLAMA2_VOCAB = 32000


def main() -> None:
    config = MedVersaConfig.paper_7b()
    config.token_ids = {t: LLAMA2_VOCAB + i for i, t in enumerate(ADDED_TOKENS)}
    llama = LlamaConfig(vocab_size=LLAMA2_VOCAB + len(ADDED_TOKENS), hidden_size=4096, intermediate_size=11008,
                        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                        max_position_embeddings=4096, tie_word_embeddings=False)
    with torch.device("meta"):
        model = MedVersaModel(config, attach_lora(AutoModelForCausalLM.from_config(llama), config))
    parts = {
        "2D encoder (Swin-B)": model.backbone.encoder_2d,
        "2D adapter": model.backbone.adapter_2d,
        "3D encoder (3D UNet encoder)": model.backbone.encoder_3d,
        "3D adapter": model.backbone.adapter_3d,
        "detection head": model.detection_head,
        "2D UNet encoder (ResNet-18)": model.seg2d_head.encoder,
        "2D UNet decoder + head": [model.seg2d_head.decoder, model.seg2d_head.segmentation_head],
        "2D prompt + bottleneck GroupNorm": [model.seg2d_head.prompt, model.seg2d_head.bottleneck_norm],
        "3D UNet decoder + prompt": model.seg3d_head,
        "LLM (all, LoRA included)": model.backbone.llm,
    }
    for name, modules in parts.items():
        modules = modules if isinstance(modules, list) else [modules]
        print(f"{name:34s} {sum(p.numel() for m in modules for p in m.parameters()):>15,d}")
    llm_trainable = sum(p.numel() for p in model.backbone.llm.parameters() if p.requires_grad)
    print(f"{'LLM trainable (LoRA + new tokens)':34s} {llm_trainable:>15,d}")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{'total':34s} {total:>15,d}\n{'trainable':34s} {trainable:>15,d}")


if __name__ == "__main__":
    main()
