"""Engine benchmark on CPU with the tiny configuration.

Prints: ms per image for the 2D (Swin) and 3D (UNet encoder) encoders; generation tokens/s through
``MedVersa.generate`` beside plain ``transformers`` ``generate`` on the same LLM with the same number of input
embeddings (target: the wrapper costs <= 5% more); and the process's peak resident memory. At this tiny size a
generation step costs ~3 ms, so fixed per-step costs (the logits processor that keeps the image placeholder from
being generated) and the image encoder weigh far more than they do at 7B.

Usage: ``python bench/engine.py [--new-tokens 64] [--repeats 5] [--threads 2]``
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.inference import MedVersa, PreparedImage  # noqa: E402
from engine.processing import Modality, build_prompt, encode_prompt  # noqa: E402
from engine.tiny import write_tiny_checkpoint  # noqa: E402


def _interleaved_medians(fns, repeats: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of each function, timed in turn within every repeat so that load from other
    processes hits all alike; CPU time (all threads of this process) is the steadier figure on a shared machine."""
    for fn in fns:
        fn()  # warm-up
    times = [([], []) for _ in fns]
    for _ in range(repeats):
        for fn, (walls, cpus) in zip(fns, times):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return [(statistics.median(walls), statistics.median(cpus)) for walls, cpus in times]


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        mv = MedVersa.from_checkpoint(write_tiny_checkpoint(Path(tmp) / "tiny"))
    config, backbone = mv.config, mv.model.backbone
    torch.manual_seed(0)
    batch = 8
    images_2d = torch.randn(batch, 3, config.swin.image_size, config.swin.image_size)
    volumes = torch.randn(2, 1, *config.unet3d.volume_size)
    with torch.no_grad():
        t2d = _median_seconds(lambda: backbone.adapter_2d(backbone.encoder_2d(images_2d)), args.repeats) / batch
        t3d = _median_seconds(lambda: backbone.adapter_3d(backbone.encoder_3d(volumes)[-1]), args.repeats) / 2
    print(f"2D encoder+adapter ({config.swin.image_size} px): {t2d * 1e3:.2f} ms/image")
    print(f"3D encoder+adapter ({'x'.join(map(str, config.unet3d.volume_size))}): {t3d * 1e3:.2f} ms/volume")

    image = PreparedImage(Modality.CHEST_XRAY, images_2d[0], (1024, 1024))
    question = "Please report <img0>."
    n = args.new_tokens
    fixed = {"max_new_tokens": n, "min_new_tokens": n, "stop_strings": None, "do_sample": False}
    ids = torch.tensor([encode_prompt(mv.tokenizer, build_prompt(question, 1, config))])
    embeds = torch.randn(1, ids.shape[1], config.hidden_size)
    mask = torch.ones_like(ids)
    llm = backbone.llm
    with torch.no_grad():
        (ours, ours_cpu), (plain, plain_cpu), (_, encoder_cpu) = _interleaved_medians([
            lambda: mv.generate([image], question, **fixed),
            lambda: llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, pad_token_id=mv.tokenizer.pad_token_id),
            lambda: backbone.encode_images(image.pixel_values[None], None, None),
        ], args.repeats)
    print(f"prompt: {ids.shape[1]} input embeddings, {n} new tokens, batch 1, {args.threads} threads")
    print(f"MedVersa.generate:      {n / ours:8.1f} tokens/s ({ours * 1e3:.1f} ms wall, {ours_cpu * 1e3:.1f} ms CPU, "
          f"of which 2D image encoding {encoder_cpu * 1e3:.1f} ms CPU)")
    print(f"transformers.generate:  {n / plain:8.1f} tokens/s ({plain * 1e3:.1f} ms wall, {plain_cpu * 1e3:.1f} ms CPU)")
    print(f"wrapper overhead: {100 * (ours / plain - 1):+.1f}% wall, {100 * (ours_cpu / plain_cpu - 1):+.1f}% CPU; "
          f"without image encoding {100 * ((ours_cpu - encoder_cpu) / plain_cpu - 1):+.1f}% CPU (target <= +5%)")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
