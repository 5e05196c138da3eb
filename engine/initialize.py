"""A starting checkpoint for training from public weights: the base LM (Llama-2-7B-chat in the paper) with the
MedVersa tokens added and LoRA attached, the ImageNet ResNet-18 and Swin-B backbones, and freshly initialised
adapters and heads (paper sections 4.2-4.4).

``python -m engine.initialize --llm DIR [--tokenizer DIR] [--resnet18 FILE] [--swin PATH] [--config 7b|tiny] --out DIR``

The checkpoint refers to the base LM folder by its absolute path (the 13 GB of Llama-2 are not copied); it is the
``init_checkpoint`` of a training config (:mod:`engine.training_config`). Everything loads from local paths only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoTokenizer

from engine.checkpoint import CheckpointError, build_model, save_checkpoint
from engine.configuration import MedVersaConfig
from engine.pretrained import load_imagenet_weights
from engine.processing import add_medversa_tokens

CONFIGS = {"7b": MedVersaConfig.paper_7b, "tiny": MedVersaConfig.tiny}


def initialize(llm: str | Path, out: str | Path, config: MedVersaConfig, tokenizer: str | Path | None = None,
               resnet18: str | Path | None = None, swin: str | Path | None = None, seed: int = 0) -> Path:
    """Build and save a starting checkpoint; returns ``out``.

    Args:
        llm: base causal LM folder (Hugging Face layout); its width must equal ``config.hidden_size``.
        config: the MedVersa configuration (``config.llm_path`` is set to ``llm``'s absolute path).
        tokenizer: tokenizer folder (default: ``llm``); the MedVersa tokens are appended to it.
        resnet18, swin: ImageNet weight files for the 2D UNet encoder and the 2D vision encoder
            (:func:`engine.pretrained.load_imagenet_weights`); ``None`` keeps that part random.
        seed: seeds the random initialisation of adapters, heads and LoRA.

    Raises:
        CheckpointError: an unreadable LM, tokenizer or weight file, a file of another layout, or an LM whose hidden
            size differs from ``config.hidden_size``.
        FileNotFoundError: a weight file that does not exist.
    """
    torch.manual_seed(seed)
    llm = Path(llm).resolve()
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer or llm, local_files_only=True)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load a tokenizer from {tokenizer or llm}: {err}") from err
    add_medversa_tokens(tok, config)
    config.llm_path = str(llm)
    model = build_model(config, llm, tok)
    width = model.backbone.llm.get_input_embeddings().weight.shape[1]
    if width != config.hidden_size:
        raise CheckpointError(f"the LM in {llm} has hidden size {width} but the MedVersa config expects "
                              f"{config.hidden_size}")
    load_imagenet_weights(model, resnet18=resnet18, swin=swin)
    return save_checkpoint(model, tok, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a MedVersa starting checkpoint from a base LM and ImageNet "
                                                 "backbones (local files only).")
    parser.add_argument("--llm", required=True, type=Path, help="base causal LM folder (e.g. Llama-2-7b-chat-hf)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default: --llm)")
    parser.add_argument("--resnet18", type=Path, default=None, help="ImageNet ResNet-18 weights (torchvision layout)")
    parser.add_argument("--swin", type=Path, default=None, help="ImageNet Swin-B folder or weights file")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="7b")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        parser.error(f"--out {args.out} exists and is not an empty folder; choose a new folder")
    for flag, path in (("--llm", args.llm), ("--tokenizer", args.tokenizer)):
        if path is not None and not path.is_dir():
            parser.error(f"{flag} {path}: no such folder (weights load from local paths only)")
    try:
        out = initialize(args.llm, args.out, CONFIGS[args.config](), args.tokenizer, args.resnet18, args.swin,
                         args.seed)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from err
    print(f"starting checkpoint written to {out} (base LM {args.llm.resolve()})")


if __name__ == "__main__":
    main()
