"""A tiny random-initialised MedVersa with a locally trained tokenizer, for trying the pipeline without weights.

``python -m engine.tiny --out DIR`` writes a complete checkpoint (see :mod:`engine.checkpoint`) in seconds on CPU.
Nothing is downloaded: the tokenizer is a byte-level BPE trained in memory (``tokenizers``) and the LLM is a
2-layer ``LlamaConfig`` model built with ``AutoModelForCausalLM.from_config``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from engine.checkpoint import build_model, save_checkpoint
from engine.configuration import MedVersaConfig
from engine.processing import ASSISTANT, HUMAN, TEMPLATES, add_medversa_tokens

SPECIAL_TOKENS = ("<s>", "</s>", "<unk>", "<pad>")
_BASE_TEXTS = (
    "FINDINGS: The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.",
    "IMPRESSION: No acute cardiopulmonary disease. No pneumothorax or pleural effusion.",
    "The segmentation mask of liver is", "Age:60.Gender:F.Location:back.", HUMAN, ASSISTANT, "###",
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` (plus the instruction templates) in memory, wrapped in
    ``PreTrainedTokenizerFast`` with ``<s>``/``</s>``/``<unk>``/``<pad>``. Like Llama's tokenizer it prepends BOS
    when special tokens are added (``encode(text)`` starts with ``<s>``). The MedVersa tokens are not added here."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [*texts, *_BASE_TEXTS, *(t for templates in TEMPLATES.values() for t in templates)]
    tokenizer.train_from_iterator(corpus, trainer)
    bos = tokenizer.token_to_id("<s>")  # Llama's post-processor: BOS before each sequence, no EOS
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")


def write_tiny_checkpoint(out: str | Path, texts: Iterable[str] = (), seed: int = 0,
                          config: MedVersaConfig | None = None) -> Path:
    """Write a tiny random MedVersa checkpoint (``MedVersaConfig.tiny()`` unless given) into ``out``."""
    torch.manual_seed(seed)
    out = Path(out)
    config = config or MedVersaConfig.tiny()
    tokenizer = train_tokenizer(texts)
    add_medversa_tokens(tokenizer, config)
    llm_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=2 * config.hidden_size,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    AutoModelForCausalLM.from_config(llm_config).save_pretrained(out / "llm")
    model = build_model(config, out / "llm", tokenizer)
    return save_checkpoint(model, tokenizer, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learnable", action="store_true",
                        help="a tiny model that can fit text (trainable lm_head, LoRA on q/k/v/o; "
                             "MedVersaConfig.tiny(learnable=True)), e.g. for bench/overfit.py")
    args = parser.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        parser.error(f"--out {args.out} exists and is not an empty folder; choose a new folder")
    parent = next((p for p in args.out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        parser.error(f"--out {args.out}: {parent} is not a folder")
    path = write_tiny_checkpoint(args.out, seed=args.seed, config=MedVersaConfig.tiny(learnable=args.learnable))
    print(f"tiny MedVersa checkpoint written to {path}")


if __name__ == "__main__":
    main()
