"""Engine benchmark on one GPU with the paper's 7B shapes and random weights (bf16); sized for < 5 minutes.

Builds Llama-2-7B shapes (hidden 4096, 32 layers, vocabulary 32005 with the added tokens), Swin-B 224, the
3D UNet encoder at 64x192x192, LoRA r=16 on q/v, and the heads, all random, directly on the GPU. Prints time to
first token (image encoding + prefill), decode tokens/s at batch 1 and 8, the 3D-segmentation path
(``<3DSEG>`` forced, mask back on a 512x512x100 input grid), and peak GPU memory.

Usage: ``python bench/engine_gpu.py [--new-tokens 128]`` (needs CUDA; no downloads).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LogitsProcessor, LogitsProcessorList

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.configuration import SEG3D_TOKEN, MedVersaConfig  # noqa: E402
from engine.inference import MedVersa, PreparedImage, Request  # noqa: E402
from engine.modeling import MedVersaModel, attach_lora  # noqa: E402
from engine.processing import Modality, add_medversa_tokens  # noqa: E402
from engine.tiny import train_tokenizer  # noqa: E402

LLAMA2_VOCAB = 32000


class Force(LogitsProcessor):
    def __init__(self, ids):
        self.ids = ids

    def __call__(self, input_ids, scores):
        out = torch.full_like(scores, float("-inf"))
        out[:, self.ids[min(input_ids.shape[1], len(self.ids) - 1)]] = 0
        return out


def _timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start, result


def build(device: str) -> MedVersa:
    config = MedVersaConfig.paper_7b()
    tokenizer = train_tokenizer([])
    add_medversa_tokens(tokenizer, config)
    # ids of the added tokens follow the tokenizer; the LM keeps Llama-2's 32000 + 5 rows
    llm_config = LlamaConfig(vocab_size=LLAMA2_VOCAB + 5, hidden_size=4096, intermediate_size=11008,
                             num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                             max_position_embeddings=4096, tie_word_embeddings=False,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    with torch.device(device):
        llm = AutoModelForCausalLM.from_config(llm_config, dtype=torch.bfloat16)
        model = MedVersaModel(config, attach_lora(llm, config))
    return MedVersa(model.to(device, torch.bfloat16).eval(), tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/engine_gpu.py needs a CUDA GPU")
    device = "cuda"
    torch.manual_seed(0)
    load_s, mv = _timed(lambda: build(device))
    print(f"random 7B-shaped MedVersa built on {torch.cuda.get_device_name()} in {load_s:.1f} s; "
          f"{sum(p.numel() for p in mv.model.parameters()) / 1e9:.2f} B parameters")
    torch.cuda.reset_peak_memory_stats()
    unused_rows = list(range(len(mv.tokenizer), LLAMA2_VOCAB + 5))  # rows the small tokenizer cannot decode
    n = args.new_tokens
    size = mv.config.swin.image_size
    image = PreparedImage(Modality.CHEST_XRAY, torch.randn(3, size, size), (2048, 2048))
    question = "Can you provide a report of <img0><img1> with findings and impression?"
    common = {"stop_strings": None, "do_sample": False, "suppress_tokens": unused_rows}

    mv.generate([image, image], question, max_new_tokens=2, **common)  # warm-up
    ttft, _ = _timed(lambda: mv.generate([image, image], question, max_new_tokens=1, min_new_tokens=1, **common))
    print(f"time to first token (2 images encoded + prefill), batch 1: {ttft * 1e3:.0f} ms")
    for batch in (1, 8):
        requests = [Request([image, image], question)] * batch
        seconds, _ = _timed(lambda: mv.generate_batch(requests, max_new_tokens=n, min_new_tokens=n, **common))
        print(f"batch {batch}: {batch * n / seconds:.1f} tokens/s ({n} new tokens each, {seconds:.2f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        import nibabel as nib

        affine = np.diag([0.8, 0.8, 2.5, 1.0])
        volume = np.random.default_rng(0).integers(-1000, 1000, (512, 512, 100)).astype(np.int16)
        nib.save(nib.Nifti1Image(volume, affine), Path(tmp) / "ct.nii.gz")
        ct = mv.prepare_image(Path(tmp) / "ct.nii.gz")
    answer = mv.tokenizer.encode(f"The segmentation mask of liver is {SEG3D_TOKEN}.###", add_special_tokens=False)
    seconds, result = _timed(lambda: mv.generate([ct], "Segment liver in <img0>.", max_new_tokens=len(answer) + 1,
                                                 logits_processor=LogitsProcessorList([Force(answer)]),
                                                 suppress_tokens=unused_rows))
    grid = "x".join(map(str, result.masks_3d[0].mask.shape))
    print(f"3D segmentation answer + mask back on the {grid} input grid: {seconds:.2f} s")
    print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
