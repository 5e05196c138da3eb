"""The training configuration: a JSON or YAML file read into :class:`TrainConfig` (paper section 4.4 defaults).

Example ``train.json`` (only the three paths are required; every other key has the paper's default)::

    {"init_checkpoint": "ckpt/init", "manifest": "data/train.jsonl", "output_dir": "runs/joint",
     "batch_size": 4, "mixed_precision": "bf16", "save_every": 5000}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path

STAGES = ("joint", "segmentation")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
LLM_DTYPES = ("auto", "float32", "bfloat16")

#: Keys that only steer a run (where it stops, how often it saves or logs, how data is read) and may differ
#: when resuming; every other key changes the trajectory and must equal the checkpoint's.
RUN_CONTROL_KEYS = frozenset({"output_dir", "max_steps", "save_every", "log_every", "num_workers", "tensorboard",
                              "progress", "check_files", "allowed_roots"})


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the paper's (section 4.4) where it gives them.

    Args:
        init_checkpoint: MedVersa checkpoint folder (:mod:`engine.checkpoint` format) the run starts from, e.g.
            written by ``python -m engine.checkpoint`` (released weights) or ``python -m engine.tiny``.
        manifest: training manifest (JSONL, :mod:`engine.data.manifest`), or a list of them (``sample_id`` unique
            across them); validated completely before step 1.
        output_dir: where ``checkpoint-STEP`` folders, ``train_log.jsonl`` and TensorBoard files go.
        stage: ``"joint"`` (all tasks; LoRA, added-token rows, adapters, heads) or ``"segmentation"`` (the
            segmentation finetuning stage: LLM frozen, segmentation modules only, ``segmentation_lr``).
        seed: seeds the sampler, augmentations, dropout and the data loader.
        batch_size: samples per minibatch per process (the paper does not state it).
        gradient_accumulation_steps: minibatches per optimizer step (each its own domain-aware batch).
        total_steps: optimizer steps of the schedule (paper: 500,000 iterations).
        max_steps: stop after this many steps (``None``: ``total_steps``); may change when resuming.
        lr: peak learning rate of the joint stage (paper: 3e-4).
        min_lr: final learning rate of the cosine (paper: 3e-6).
        warmup_steps: linear warm-up steps (paper: 3,000) starting at ``warmup_start_lr`` (paper: 1e-7).
        segmentation_lr: peak learning rate of the segmentation stage (paper: 1e-4; same warm-up and cosine).
        weight_decay: AdamW decoupled weight decay on weight matrices (not stated in the paper; torch's default).
        adam_betas: AdamW betas (torch's default).
        max_grad_norm: clip the gradient norm to this value; ``None`` (default, the paper states none): no clipping.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (``accelerate``'s autocast); ``"auto"`` (default):
            ``"bf16"`` when CUDA is available or ``llm_dtype`` is ``"bfloat16"``, else ``"no"``.
        llm_dtype: dtype of the frozen base LM weights, ``"float32"`` or ``"bfloat16"`` (half the memory: 13.5 GB
            instead of 27 GB at 7B; needs bf16 autocast); ``"auto"`` (default): ``"bfloat16"`` when CUDA is
            available, else ``"float32"``. LoRA, the added-token rows (peft's trainable-token delta) and all other
            modules stay float32 (peft keeps adapters in float32), so small updates of the new rows are not
            rounded away.
        gradient_checkpointing: recompute the LLM's activations in the backward pass (less memory, ~30% slower).
        imaging_weights: sampling weight per imaging type, e.g. ``{"chest_xray": 3, "ct": 1}``; ``None``: equal.
        task_weights: per imaging type, weight per task, e.g. ``{"chest_xray": {"report": 2, "detection": 1}}``;
            ``None``: equal (:class:`engine.data.sampler.DomainBatchSampler`).
        augment: the paper's augmentations (random crop 50-100% + resize for text tasks; flips for segmentation).
        flip_detection: also flip detection samples (boxes with them). Default off: the paper names flips for
            segmentation only (section 4.4).
        box_loss_weight: weight of the SmoothL1 box loss in the joint loss. The paper gives none (section 4.3:
            "a mix of cross-entropy and regression losses"); 100 is the released code's value. Written into the
            checkpoints' ``config.json`` (``losses.box``).
        num_workers: data-loader worker processes (0: load in the training process).
        save_every: write a checkpoint every this many steps (and after the last step).
        log_every: append a record to ``train_log.jsonl`` (and TensorBoard) every this many steps.
        tensorboard: also write TensorBoard event files into ``output_dir``.
        progress: show a tqdm progress bar (loss parts, samples/s) on the main process.
        check_files: check every image and mask file of the manifest up front (headers, shapes).
        skip_invalid: drop invalid manifest rows (their count is logged) instead of refusing the manifest.
        allowed_roots: folders besides each manifest's own that its image and mask paths may lie in (e.g. the
            dataset folder); a path outside is an invalid row (:func:`engine.data.manifest.read_manifest`).

    Raises:
        ValueError: a value out of its range or choices (naming the key).
    """

    init_checkpoint: str
    manifest: str | list[str]
    output_dir: str
    stage: str = "joint"
    seed: int = 0
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    total_steps: int = 500_000
    max_steps: int | None = None
    lr: float = 3e-4
    min_lr: float = 3e-6
    warmup_steps: int = 3000
    warmup_start_lr: float = 1e-7
    segmentation_lr: float = 1e-4
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = None
    mixed_precision: str = "auto"
    llm_dtype: str = "auto"
    gradient_checkpointing: bool = False
    imaging_weights: dict[str, float] | None = None
    task_weights: dict[str, dict[str, float]] | None = None
    augment: bool = True
    flip_detection: bool = False
    box_loss_weight: float = 100.0
    num_workers: int = 0
    save_every: int = 5000
    log_every: int = 10
    tensorboard: bool = False
    progress: bool = True
    check_files: bool = True
    skip_invalid: bool = False
    allowed_roots: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)
        if isinstance(self.manifest, tuple):
            self.manifest = list(self.manifest)
        if not self.manifests or not all(isinstance(m, str) and m for m in self.manifests):
            raise ValueError(f"training config key manifest must be a path or a list of paths, got {self.manifest!r}")
        if not isinstance(self.allowed_roots, (list, tuple)) or not all(isinstance(r, str) and r
                                                                         for r in self.allowed_roots):
            raise ValueError(f"training config key allowed_roots must be a list of folders, got {self.allowed_roots!r}")
        self.allowed_roots = list(self.allowed_roots)
        if self.stage not in STAGES:
            raise ValueError(f"training config key stage must be one of {list(STAGES)}, got {self.stage!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"training config key mixed_precision must be one of {list(MIXED_PRECISION)}, "
                             f"got {self.mixed_precision!r}")
        if self.llm_dtype not in LLM_DTYPES:
            raise ValueError(f"training config key llm_dtype must be one of {list(LLM_DTYPES)}, got {self.llm_dtype!r}")
        if self.llm_dtype == "bfloat16" and self.mixed_precision not in ("bf16", "auto"):
            raise ValueError("training config key llm_dtype 'bfloat16' needs mixed_precision 'bf16' (autocast)")
        for key in ("batch_size", "gradient_accumulation_steps", "total_steps", "save_every", "log_every"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"training config key {key} must be a positive integer, got {getattr(self, key)!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"training config key max_steps must be a positive integer or null, got {self.max_steps!r}")
        if not 0 <= self.warmup_steps < self.total_steps:
            raise ValueError(f"training config key warmup_steps must be in [0, total_steps={self.total_steps}), "
                             f"got {self.warmup_steps}")
        if not self.box_loss_weight >= 0:
            raise ValueError(f"training config key box_loss_weight must be >= 0, got {self.box_loss_weight!r}")
        for key in ("lr", "min_lr", "warmup_start_lr", "segmentation_lr"):
            if not getattr(self, key) > 0:
                raise ValueError(f"training config key {key} must be > 0, got {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        """Plain JSON-compatible dictionary (written as ``train_config.json`` into each checkpoint)."""
        data = asdict(self)
        data["adam_betas"] = list(self.adam_betas)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a dictionary.

        Raises:
            ValueError: unknown keys (named, with the known ones), missing required keys, bad values.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a training config must be a mapping of keys to values, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown training config key(s) {unknown}; known keys: {known}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"training config lacks the required key(s) {missing}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``.json``, ``.yaml`` or ``.yml`` file; relative paths in it are relative to the file's folder.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not valid JSON/YAML, or see :meth:`from_dict` (the message names the file).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config not found: {path}")
        text = path.read_text(encoding="utf-8")
        is_yaml = path.suffix.lower() in (".yaml", ".yml")
        try:
            if is_yaml:
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
            raise ValueError(f"{path}: not valid {'YAML' if is_yaml else 'JSON'}: {err}") from err
        try:
            config = cls.from_dict(data)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from err
        def absolute(value: str) -> str:
            return value if Path(value).is_absolute() else str((path.parent / value).resolve())

        config.init_checkpoint, config.output_dir = absolute(config.init_checkpoint), absolute(config.output_dir)
        config.manifest = ([absolute(m) for m in config.manifest] if isinstance(config.manifest, list)
                           else absolute(config.manifest))
        config.allowed_roots = [absolute(r) for r in config.allowed_roots]
        return config

    def resolved_precision(self, cuda: bool) -> tuple[str, str]:
        """``(mixed_precision, llm_dtype)`` with ``"auto"`` resolved: bf16 autocast and a bfloat16 base LM on CUDA,
        float32 without autocast on CPU (an explicit ``llm_dtype`` ``"bfloat16"`` brings bf16 autocast)."""
        dtype = self.llm_dtype if self.llm_dtype != "auto" else ("bfloat16" if cuda else "float32")
        mixed = self.mixed_precision if self.mixed_precision != "auto" else (
            "bf16" if cuda or dtype == "bfloat16" else "no")
        return mixed, dtype

    @property
    def manifests(self) -> list[str]:
        """:attr:`manifest` as a list."""
        return list(self.manifest) if isinstance(self.manifest, (list, tuple)) else [self.manifest]

    def resume_differences(self, saved: TrainConfig) -> list[tuple[str, object, object]]:
        """``(key, value here, value in saved)`` for every key outside :data:`RUN_CONTROL_KEYS` that differs."""
        here, there = self.to_dict(), saved.to_dict()
        return [(k, here[k], there[k]) for k in here if k not in RUN_CONTROL_KEYS and here[k] != there[k]]
