"""``python -m engine.train --config train.json [--resume DIR]``: train MedVersa (see :mod:`engine.training`).

One process: ``python -m engine.train ...``. Several processes (GPUs, or CPU processes with gloo):
``accelerate launch --multi_gpu --num_processes N -m engine.train ...`` or ``torchrun --nproc_per_node N -m
engine.train ...``. Without ``--multi_gpu`` on a machine without CUDA, accelerate's simple launcher starts a single
process whatever ``--num_processes`` says; that launch is refused (:func:`check_launch`). The config keys and their defaults
are those of :class:`engine.training_config.TrainConfig`; ``--print-defaults`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from engine.training_config import TrainConfig


def check_launch(environ: dict[str, str]) -> None:
    """Refuse a launch that asked for several processes but started one: ``accelerate launch --num_processes N``
    (N > 1) without ``--multi_gpu`` sets ``MASTER_PORT`` and ``ACCELERATE_USE_CPU`` but runs one process without
    ``WORLD_SIZE`` (accelerate 1.15's simple launcher), which would train alone and save world size 1.

    Raises:
        SystemExit: naming the flags that start N processes.
    """
    if "ACCELERATE_USE_CPU" in environ and "MASTER_PORT" in environ and "WORLD_SIZE" not in environ:
        raise SystemExit("error: accelerate launch started 1 process although several were asked for; use "
                         "`accelerate launch --multi_gpu --num_processes N -m engine.train ...` (also on CPU: the "
                         "processes then use gloo) or `torchrun --nproc_per_node N -m engine.train ...`")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train MedVersa from a JSON/YAML training config.")
    parser.add_argument("--config", type=Path, help="training config (.json, .yaml or .yml)")
    parser.add_argument("--resume", type=Path, default=None,
                        help="a checkpoint-STEP folder written by a run of the same config: continue from it")
    parser.add_argument("--print-defaults", action="store_true", help="print every config key with its default")
    args = parser.parse_args(argv)
    if args.print_defaults:
        defaults = {f.name: (None if f.default is dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(TrainConfig)}
        print(json.dumps(defaults, indent=2))
        return
    if args.config is None:
        parser.error("--config is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = TrainConfig.load(args.config)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))

    check_launch(dict(os.environ))
    print(f"loading torch, transformers and the model of {args.config} (a minute or more on a busy CPU)...",
          file=sys.stderr, flush=True)
    from engine.training import ResumeError, train

    try:
        result = train(config, resume=args.resume)
    except (ResumeError, FileExistsError) as err:
        raise SystemExit(f"error: {err}") from err
    if result.checkpoints:
        print(f"last checkpoint: {result.checkpoints[-1]}")


if __name__ == "__main__":
    main()
