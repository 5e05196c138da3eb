"""Training benchmark on CPU with the tiny configuration and real files (../shared/data).

Prints, for the manifest of tests/engine/training_fixtures.py (NIH chest PNG + IU reports, HAM10000 images and
masks for 2D segmentation and detection, the TotalSegmentator CT and organ masks):

- the model's consumption rate: optimizer steps/s and samples/s of :func:`engine.training.train_step` on
  minibatches already in memory, per (imaging type, task) group and over the sampler's mix;
- the data loader's rate (read, augment, collate) in samples/s for 0..N worker processes, and its ratio to the
  model's rate (the loader must never be the bottleneck: target >= 5x);
- the end-to-end rate of :func:`engine.training.train` (loader and model together).

Usage: ``python bench/train.py [--steps 20] [--batch-size 2] [--threads 2] [--workers 0 2]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.data.manifest import write_manifest  # noqa: E402
from engine.data.sampler import DomainBatchSampler  # noqa: E402
from engine.tiny import write_tiny_checkpoint  # noqa: E402
from engine.training import build_loader, build_optimizer, configure_stage, train, train_step  # noqa: E402
from engine.training_config import TrainConfig  # noqa: E402
from tests.engine.training_fixtures import fixture_samples  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def loader_rate(samples, sampler_seed, model, tokenizer, config: TrainConfig, batches: int) -> float:
    """Samples/s of the data loader alone over ``batches`` domain-aware minibatches (first one not timed)."""
    sampler = DomainBatchSampler(samples, config.batch_size, seed=sampler_seed)
    iterator = iter(build_loader(samples, sampler, tokenizer, model.config, config))
    next(iterator)  # worker start-up
    start = time.perf_counter()
    count = sum(next(iterator)[2].input_ids.shape[0] for _ in range(batches))
    return count / (time.perf_counter() - start)


def model_rates(samples, model, tokenizer, config: TrainConfig, steps: int) -> dict[str, float]:
    """Samples/s of forward + backward + AdamW step per group and over the sampler's mix, on batches in memory."""
    accelerator = Accelerator(cpu=True)
    configure_stage(model, "joint")
    optimizer = build_optimizer(model, config)
    model, optimizer = accelerator.prepare(model, optimizer)
    sampler = DomainBatchSampler(samples, config.batch_size, seed=1)
    loader = iter(build_loader(samples, sampler, tokenizer, model.config, config))
    batches = [next(loader) for _ in range(steps)]
    per_group: dict[str, list[float]] = {}
    for task, imaging, inputs in [batches[0], *batches]:  # the first pass warms up
        start = time.perf_counter()
        train_step(accelerator, model, optimizer, inputs, "joint")
        per_group.setdefault(f"{imaging}/{task}", []).append(inputs.input_ids.shape[0] / (time.perf_counter() - start))
    per_group[batches[0][1] + "/" + batches[0][0]].pop(0)
    rates = {group: statistics.median(values) for group, values in per_group.items() if values}
    total_samples = sum(b[2].input_ids.shape[0] for b in batches)
    mix_seconds = sum(b[2].input_ids.shape[0] / rates[f"{b[1]}/{b[0]}"] for b in batches)
    rates["mix (sampler's weights)"] = total_samples / mix_seconds
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="data-loader worker counts to time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        init = write_tiny_checkpoint(tmp / "init")
        samples = fixture_samples(SHARED)
        manifest = write_manifest(samples, tmp / "train.jsonl")
        config = TrainConfig(str(init), str(manifest), str(tmp / "run"), batch_size=args.batch_size,
                             total_steps=10 * args.steps, warmup_steps=2, max_steps=args.steps, progress=False,
                             save_every=10 * args.steps, allowed_roots=[str(SHARED)])
        model, tokenizer = load_checkpoint(init)
        print(f"tiny MedVersa, {len(samples)} real samples in {len(DomainBatchSampler(samples, 1).groups)} groups, "
              f"batch size {args.batch_size}, {args.threads} torch thread(s)")
        rates = model_rates(samples, model, tokenizer, config, args.steps)
        for group, rate in rates.items():
            print(f"model  {group:32s} {rate:7.2f} samples/s  {rate / args.batch_size:6.2f} steps/s")
        mix = rates["mix (sampler's weights)"]
        for workers in args.workers:
            config.num_workers = workers
            rate = loader_rate(samples, 1, model, tokenizer, config, args.steps)
            print(f"loader {workers} worker(s)                {rate:7.2f} samples/s  = {rate / mix:.1f}x the model's "
                  f"mix rate (target >= 5x)")
        config.num_workers = max(args.workers)
        start = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - start
        steady = [r["samples_per_s"] for r in result.records[2:]]
        print(f"train() end to end, {config.num_workers} worker(s): {args.steps} steps in {seconds:.1f} s "
              f"(with model load and one checkpoint); median {statistics.median(steady):.2f} samples/s, "
              f"{statistics.median(steady) / args.batch_size:.2f} steps/s")


if __name__ == "__main__":
    main()
