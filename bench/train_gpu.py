"""Training benchmark on one GPU with the paper's 7B shapes and random weights; sized for < 5 minutes.

Builds Llama-2-7B shapes (hidden 4096, 32 layers, vocabulary 32005 with the added tokens; frozen base weights in
bf16), LoRA r=16 on q/v with the added-token rows, Swin-B 224 (frozen), the 3D UNet at 64x192x192 and the heads,
all random, directly on the GPU. Trains with the training loop's own step (:func:`engine.training.train_step`:
``accelerate`` bf16 autocast, AdamW over the joint stage's trainable parameters, optional activation
checkpointing) on synthetic minibatches in the real prompt format (random pixels, an answer of
``--answer-tokens`` tokens): report (two chest X-rays), detection (three classes), 2D and 3D segmentation.

Prints per task and for an equal mix of the four: samples/s, LLM tokens/s (prompt + answer, padding excluded),
peak GPU memory; then the implied hours for the paper's 500k iterations per GPU count (paper: 24 A100-80G, 72 h).

Usage: ``python bench/train_gpu.py [--batch-size 4] [--steps 10] [--checkpointing]`` (needs CUDA; no downloads).
``--cpu-check`` runs the same code with the tiny shapes on CPU (2 steps per task) to check the script itself.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, LlamaConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, MedVersaConfig  # noqa: E402
from engine.data.collate import collate  # noqa: E402
from engine.data.loading import Example  # noqa: E402
from engine.modeling import MedVersaModel, attach_lora  # noqa: E402
from engine.processing import Task, add_medversa_tokens, build_prompt, instruction  # noqa: E402
from engine.tiny import train_tokenizer  # noqa: E402
from engine.training import build_optimizer, configure_stage, enable_gradient_checkpointing, train_step  # noqa: E402
from engine.training_config import TrainConfig  # noqa: E402

LLAMA2_VOCAB = 32000
PAPER_ITERATIONS, PAPER_GPUS, PAPER_HOURS = 500_000, 24, 72
GPU_COUNTS = (1, 2, 4, 8, 16, 24)
_TEXT = ("The heart size is normal. The mediastinal contours are within normal limits. There is no focal "
         "consolidation, pleural effusion or pneumothorax. Degenerative changes of the thoracic spine. ")


def build(device: str, tiny: bool):
    """(model, tokenizer, config): random weights, base LM in bf16 on CUDA, the rest float32."""
    config = MedVersaConfig.tiny() if tiny else MedVersaConfig.paper_7b()
    tokenizer = train_tokenizer([_TEXT])
    add_medversa_tokens(tokenizer, config)
    if tiny:
        shapes = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4)
    else:  # the LM keeps Llama-2's 32000 + 5 rows; the ids of the added tokens follow the small tokenizer
        shapes = dict(vocab_size=LLAMA2_VOCAB + 5, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32)
    llm_config = LlamaConfig(**shapes, max_position_embeddings=4096, tie_word_embeddings=False,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    with torch.device(device):
        llm = AutoModelForCausalLM.from_config(llm_config, dtype=torch.float32 if tiny else torch.bfloat16)
        model = MedVersaModel(config, attach_lora(llm, config))
    return model, tokenizer, config


def answer_text(tokenizer, n_tokens: int) -> str:
    ids = tokenizer.encode(_TEXT * (1 + n_tokens // 10), add_special_tokens=False)[:n_tokens]
    return tokenizer.decode(ids).strip()


def examples(task: str, config: MedVersaConfig, tokenizer, batch_size: int, answer_tokens: int) -> list[Example]:
    """Synthetic examples of one task in the prompt format of training (random pixels and targets)."""
    s, volume = config.swin.image_size, config.unet3d.volume_size
    rows = []
    for i in range(batch_size):
        boxes = masks_2d = masks_3d = pixels_3d = None
        pixels_2d = torch.randn(1, 3, s, s)
        if task == "report":
            question, answer = instruction(Task.REPORT, image="<img0><img1>"), answer_text(tokenizer, answer_tokens)
            pixels_2d = torch.randn(2, 3, s, s)
        elif task == "detection":
            question = instruction(Task.DETECTION, target="heart, left lung, nodule")
            answer = f"heart {DET_TOKEN}. left lung {DET_TOKEN}. nodule <N/A>."
            boxes = torch.tensor([[0.3, 0.4, 0.7, 0.8], [0.5, 0.1, 0.9, 0.8]])
        elif task == "seg2d":
            question, answer = instruction(Task.SEGMENTATION, target="lesion"), f"The segmentation mask of lesion is {SEG2D_TOKEN}."
            masks_2d = (torch.rand(1, 1, s, s) > 0.5).float()
        else:
            question, answer = instruction(Task.SEGMENTATION, target="liver"), f"The segmentation mask of liver is {SEG3D_TOKEN}."
            pixels_2d, pixels_3d = None, torch.randn(1, 1, *volume)
            masks_3d = (torch.rand(1, 1, *volume) > 0.5).float()
        n = 1 if pixels_2d is None else pixels_2d.shape[0]
        rows.append(Example(f"{task}-{i}", task, "ct" if task == "seg3d" else "chest_xray",
                            build_prompt(question, n, config), answer, pixels_2d, pixels_3d,
                            torch.full((n,), task == "seg3d"), boxes, masks_2d, masks_3d))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4, help="samples per minibatch (per GPU)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per task (after 2 warm-up steps)")
    parser.add_argument("--answer-tokens", type=int, default=100, help="report answer length in tokens")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing (LLM and UNets)")
    parser.add_argument("--cpu-check", action="store_true", help="tiny shapes on CPU, 2 steps: checks the script")
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.cpu_check
    if not cuda and not args.cpu_check:
        raise SystemExit("bench/train_gpu.py needs a CUDA GPU (or --cpu-check for the tiny shapes on CPU)")
    steps, warmup = (2, 1) if args.cpu_check else (args.steps, 2)
    device = "cuda" if cuda else "cpu"
    torch.manual_seed(0)
    start = time.perf_counter()
    model, tokenizer, config = build(device, tiny=args.cpu_check)
    name = torch.cuda.get_device_name() if cuda else "CPU (tiny shapes, --cpu-check)"
    print(f"random {'tiny' if args.cpu_check else '7B-shaped'} MedVersa built on {name} in "
          f"{time.perf_counter() - start:.1f} s; {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
          f"{sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.1f} M trainable")
    accelerator = Accelerator(mixed_precision="bf16" if cuda else "no", cpu=not cuda)
    configure_stage(model, "joint")
    if args.checkpointing:
        enable_gradient_checkpointing(model)
    optimizer = build_optimizer(model, TrainConfig("unused", "unused", "unused"))  # the paper's AdamW settings
    model, optimizer = accelerator.prepare(model, optimizer)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    step_seconds = {}
    print(f"batch size {args.batch_size}, activation checkpointing {'on' if args.checkpointing else 'off'}")
    for task in ("report", "detection", "seg2d", "seg3d"):
        batch = collate(examples(task, config, tokenizer, args.batch_size, args.answer_tokens), tokenizer, config)
        tokens = int(batch.attention_mask.sum())
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            train_step(accelerator, model, optimizer, batch, "joint")
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            train_step(accelerator, model, optimizer, batch, "joint")
        sync()
        seconds = (time.perf_counter() - start) / steps
        step_seconds[task] = seconds
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else "n/a"
        print(f"{task:9s} {args.batch_size / seconds:7.2f} samples/s  {tokens / seconds:9.0f} tokens/s  "
              f"{seconds * 1e3:7.0f} ms/step  ({tokens} tokens/batch)  peak GPU memory {memory}")
    mix = sum(step_seconds.values()) / len(step_seconds)
    print(f"equal mix {args.batch_size / mix:7.2f} samples/s  {1 / mix:.2f} iterations/s per GPU")
    print(f"implied hours for the paper's {PAPER_ITERATIONS:,} iterations (paper: {PAPER_GPUS} A100-80G, "
          f"{PAPER_HOURS} h), ideal DDP scaling:")
    print(f"  one iteration = one step on every GPU (global batch {args.batch_size} x GPUs): "
          f"{PAPER_ITERATIONS * mix / 3600:.1f} h for any GPU count")
    for gpus in GPU_COUNTS:
        accumulation = math.ceil(PAPER_GPUS / gpus)
        hours = PAPER_ITERATIONS * accumulation * mix / 3600
        print(f"  {gpus:2d} GPU(s), the paper's global batch ({PAPER_GPUS} x {args.batch_size}) through "
              f"{accumulation} accumulation step(s): {hours:8.1f} h")


if __name__ == "__main__":
    main()
