"""MedVersa training loop on Hugging Face ``accelerate`` (paper sections 4.3-4.4).

One process per device (``accelerate launch`` / ``torchrun`` start them; DDP, gloo on CPU, NCCL on GPUs), optional
bf16 mixed precision, gradient accumulation and gradient checkpointing of the LLM. Minibatches are domain-aware
(:class:`engine.data.sampler.DomainBatchSampler`: one task of one imaging type per batch, each rank its own
shard). AdamW with the paper's schedule (:func:`learning_rate`). Two stages:

- ``joint``: LoRA, the added-token rows, the visual adapters, the 3D UNet encoder and all heads train; the Swin
  encoder and the base LM weights stay frozen (paper 4.4, engine-notes.md).
- ``segmentation``: the segmentation finetuning stage (paper 4.4: "we froze the language model and focused on
  finetuning the segmentation vision module"): everything that feeds the LLM stays as the joint stage left it -
  the LLM (base weights, LoRA, added-token rows), the visual adapters, the Swin and the 3D UNet encoder, whose
  deepest map is also the 3D vision encoder's output read by the 3D adapter - and is in eval mode; only the 2D UNet
  (its own ResNet-18 encoder and decoder) and the 3D UNet decoder with its prompt projection train, with their own
  learning rate (paper: 1e-4), on the segmentation samples. Freezing the shared 3D encoder (rather than giving the
  segmentation path its own copy) keeps one set of weights and the LLM's 3D visual tokens exactly those it was
  trained with; the 3D decoder still adapts to the frozen features through its skip connections.

A checkpoint (``OUTPUT_DIR/checkpoint-STEP``) is the engine's own format (:func:`engine.checkpoint.save_checkpoint`,
loadable by :func:`engine.checkpoint.load_checkpoint` and ``engine.drafts``) plus ``train_config.json``,
``training_state.pt`` (step, optimizer, scheduler, process count: tensors and plain values, loaded with
``torch.load(weights_only=True)``) and ``rank_state_R.json`` per process (its sampler state and the
python/numpy/torch RNG states). Nothing of a checkpoint is unpickled beyond tensors and plain values, so a shared
checkpoint folder cannot run code (issue 18). Resuming from it continues exactly: on CPU the losses are
bit for bit those of a run that never stopped. Augmentation draws come from
:func:`engine.data.loading.example_rng` of (seed, batch number, slot in the batch), so they do not depend on
data-loader workers or prefetching; the sampler state saved is that after the last minibatch trained on.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from engine.checkpoint import (ADAPTER_DIR, ADAPTER_WEIGHTS, WEIGHTS_NAME, CheckpointError, load_adapter_weights,
                               load_checkpoint, load_module_weights, load_torch_file, resolve_llm_path,
                               save_checkpoint)
from engine.configuration import MedVersaConfig
from engine.data.collate import collate
from engine.data.loading import Example, example_rng, load_example
from engine.data.manifest import read_manifest
from engine.data.sampler import DomainBatchSampler
from engine.data.schema import Sample
from engine.modeling import MedVersaInputs, MedVersaModel
from engine.training_config import TrainConfig

log = logging.getLogger(__name__)

TRAIN_CONFIG_NAME = "train_config.json"
TRAINING_STATE_NAME = "training_state.pt"
LOG_NAME = "train_log.jsonl"
LOSS_PARTS = ("language_loss", "box_loss", "seg2d_loss", "seg3d_loss")


class ResumeError(ValueError):
    """A ``--resume`` folder that is not a training checkpoint, or was written by another training config or
    process count."""


def learning_rate(step: int, peak: float, total_steps: int, warmup_steps: int = 3000, warmup_start: float = 1e-7,
                  minimum: float = 3e-6) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warm-up from ``warmup_start`` to ``peak``
    over ``warmup_steps`` steps, then half a cosine from ``peak`` down to ``minimum`` at ``total_steps``; ``minimum``
    after that (paper section 4.4: 3,000 warm-up steps from 1e-7 to 3e-4, cosine to 3e-6 over 500k iterations).

    Raises:
        ValueError: negative step, or ``warmup_steps`` not below ``total_steps``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be in [0, total_steps={total_steps})")
    if step < warmup_steps:
        return warmup_start + (peak - warmup_start) * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return minimum + 0.5 * (peak - minimum) * (1.0 + math.cos(math.pi * progress))


def peak_learning_rate(config: TrainConfig) -> float:
    """``config.lr`` in the joint stage, ``config.segmentation_lr`` in the segmentation stage."""
    return config.segmentation_lr if config.stage == "segmentation" else config.lr


def segmentation_modules(model: MedVersaModel) -> list[torch.nn.Module]:
    """The modules trained in the segmentation stage: the 2D UNet (head, with its own encoder) and the 3D UNet
    decoder head. The 3D UNet encoder is not among them: it is the 3D vision encoder that feeds the LLM."""
    return [model.seg2d_head, model.seg3d_head]


def configure_stage(model: MedVersaModel, stage: str) -> None:
    """Set ``requires_grad`` and train/eval modes for ``stage`` (see the module docstring).

    In the joint stage the flags are those the model is built with (peft freezes the base LM and leaves LoRA and
    the added-token rows trainable; a frozen Swin has no gradients). In the segmentation stage everything but
    :func:`segmentation_modules` is frozen and the backbone runs in eval mode (no LoRA dropout).
    """
    model.train()
    if stage == "segmentation":
        model.requires_grad_(False)
        model.backbone.eval()
        for module in segmentation_modules(model):
            module.requires_grad_(True)
            module.train()


def enable_gradient_checkpointing(model: MedVersaModel) -> None:
    """Recompute activations in the backward pass instead of storing them: the LLM's layers and the UNet levels
    (:meth:`engine.modeling.MedVersaModel.activation_checkpointing_enable`, non-reentrant)."""
    model.activation_checkpointing_enable()


def build_optimizer(model: MedVersaModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on matrices only (not on biases and norm gains).

    Raises:
        ValueError: the model has no trainable parameter.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters for this stage")
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=peak_learning_rate(config),
                             betas=tuple(config.adam_betas))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` following :func:`learning_rate` (its factor is relative to the peak rate)."""
    peak = peak_learning_rate(config)
    schedule = partial(_lr_factor, peak=peak, total_steps=config.total_steps, warmup_steps=config.warmup_steps,
                       warmup_start=config.warmup_start_lr, minimum=config.min_lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _lr_factor(step: int, peak: float, **kwargs) -> float:
    return learning_rate(step, peak, **kwargs) / peak


def load_samples(config: TrainConfig) -> list[Sample]:
    """Read and validate every manifest up front (so a run never dies late on a bad row), keep the stage's
    samples (segmentation only in the segmentation stage).

    Raises:
        engine.data.manifest.ManifestError: an invalid row (unless ``skip_invalid``: then the count is logged).
        ValueError: a ``sample_id`` in two manifests, or no sample left for the stage.
    """
    samples, origin = [], {}
    for manifest in config.manifests:
        if config.skip_invalid:
            rows, errors = read_manifest(manifest, check_files=config.check_files, skip_invalid=True,
                                         allowed_roots=config.allowed_roots)
            if errors:
                line, reason = errors[0]
                log.warning("skipped %d invalid row(s) of %s (first: line %d: %s)", len(errors), manifest, line, reason)
        else:
            rows = read_manifest(manifest, check_files=config.check_files, allowed_roots=config.allowed_roots)
        for sample in rows:
            if sample.sample_id in origin:
                raise ValueError(f"sample_id {sample.sample_id!r} is in both {origin[sample.sample_id]} and {manifest}")
            origin[sample.sample_id] = manifest
        samples += rows
    if config.stage == "segmentation":
        samples = [s for s in samples if s.task == "segmentation"]
    if not samples:
        raise ValueError(f"manifest(s) {config.manifests} hold no usable sample for the {config.stage} stage")
    return samples


# ------------------------------------------------------------------------------------------------ data


class NumberedBatches:
    """The sampler's batches as data-loader keys: ``[(batch_number, slot, index), ...]`` where ``batch_number``
    is the sampler step of the batch (it continues after a resume)."""

    def __init__(self, sampler: DomainBatchSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for indices in self.sampler:
            number = self.sampler.step - 1  # the sampler counts the batch once it has yielded it
            yield [(number, slot, index) for slot, index in enumerate(indices)]


class ManifestDataset(Dataset):
    """Loads the sample of key ``(batch_number, slot, index)``, augmenting with
    :func:`engine.data.loading.example_rng` of ``(seed, batch_number, slot)``: the same draws whatever the
    number of workers, the prefetching or a resume."""

    def __init__(self, samples: list[Sample], config: MedVersaConfig, seed: int, augment: bool,
                 flip_detection: bool = False):
        self.samples, self.config, self.seed, self.augment = samples, config, seed, augment
        self.flip_detection = flip_detection

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int, int]) -> Example:
        number, slot, index = key
        return load_example(self.samples[index], self.config, example_rng(self.seed, number, slot), self.augment,
                            self.flip_detection)


def build_loader(samples: list[Sample], sampler: DomainBatchSampler, tokenizer, model_config: MedVersaConfig,
                 config: TrainConfig) -> DataLoader:
    """A ``DataLoader`` of ``(task, imaging, MedVersaInputs)`` over the domain-aware batches of ``sampler``, with
    its own generator, so starting it draws nothing from the global torch RNG (dropout stays reproducible)."""
    dataset = ManifestDataset(samples, model_config, config.seed, config.augment, config.flip_detection)
    return DataLoader(dataset, batch_sampler=NumberedBatches(sampler), num_workers=config.num_workers,
                      collate_fn=partial(_collate_with_group, tokenizer=tokenizer, config=model_config),
                      generator=torch.Generator().manual_seed(config.seed))


def _collate_with_group(examples: list[Example], tokenizer, config: MedVersaConfig) -> tuple[str, str, MedVersaInputs]:
    return examples[0].task, examples[0].imaging, collate(examples, tokenizer, config)


def _to_device(inputs: MedVersaInputs, device: torch.device) -> MedVersaInputs:
    return MedVersaInputs(**{k: None if v is None else v.to(device) for k, v in vars(inputs).items()})


# ------------------------------------------------------------------------------------------------ state


def _tensor_text(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _text_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)


def _rng_state() -> dict:
    """The python, numpy and torch (and CUDA) RNG states as JSON values (torch states: base64 of their bytes)."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state = {"python": [version, list(internal), gauss], "numpy": numpy_state,
             "torch": _tensor_text(torch.get_rng_state())}
    if torch.cuda.is_available():
        state["cuda"] = [_tensor_text(s) for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"], state=dict(state["numpy"]["state"]))
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(_text_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_text_tensor(s) for s in state["cuda"]])


def rank_state_name(rank: int) -> str:
    return f"rank_state_{rank}.json"


def load_training_state(path: Path) -> dict:
    """The training state in ``path`` (step, optimizer, scheduler, process count), read by
    :func:`engine.checkpoint.load_torch_file` (tensors and plain values only: a crafted pickle cannot run code).

    Raises:
        ResumeError: ``path`` is not such a file (a pickle that would import or call anything, a truncated or
            foreign file), naming it.
    """
    try:
        state = load_torch_file(path)
    except CheckpointError as err:
        raise ResumeError(str(err)) from err
    missing = {"step", "optimizer", "scheduler", "world_size"} - set(state if isinstance(state, dict) else ())
    if missing:
        raise ResumeError(f"{path} is refused: not a training state (no {sorted(missing)})")
    return state


def load_rank_state(path: Path) -> dict:
    """A process's sampler and RNG states from the JSON file ``path`` (see :func:`_rng_state`).

    Raises:
        ResumeError: ``path`` is not that JSON (e.g. a pickle), naming it.
    """
    try:
        state = json.loads(path.read_bytes().decode("utf-8"))
        if not (isinstance(state, dict) and all(isinstance(state.get(k), dict) for k in ("sampler", "rng"))):
            raise ValueError("no 'sampler' and 'rng' objects")
    except (UnicodeDecodeError, ValueError) as err:
        raise ResumeError(f"{path} is refused: not a JSON rank state ({err})") from err
    return state


def check_resume_folder(directory: Path, config: TrainConfig, world_size: int) -> dict:
    """Check that ``directory`` is a training checkpoint of this training config and process count; returns its
    training state.

    Raises:
        ResumeError: naming the missing file, the first differing config key (with both values), or both process
            counts.
    """
    if not directory.is_dir():
        raise ResumeError(f"resume folder not found: {directory}")
    for name in (TRAIN_CONFIG_NAME, TRAINING_STATE_NAME, WEIGHTS_NAME, f"{ADAPTER_DIR}/{ADAPTER_WEIGHTS}"):
        if not (directory / name).is_file():
            raise ResumeError(f"{directory} is not a training checkpoint: {name} is missing")
    try:
        saved = TrainConfig.from_dict(json.loads((directory / TRAIN_CONFIG_NAME).read_bytes().decode("utf-8")))
    except (UnicodeDecodeError, ValueError, TypeError) as err:
        raise ResumeError(f"{directory / TRAIN_CONFIG_NAME} is refused: not a JSON training config ({err})") from err
    differences = config.resume_differences(saved)
    if differences:
        key, here, there = differences[0]
        raise ResumeError(
            f"{directory} was written by another training config: {key} is {there!r} there and {here!r} here "
            f"({len(differences)} differing key(s): {[d[0] for d in differences]}); resume with the config it was "
            f"started with")
    state = load_training_state(directory / TRAINING_STATE_NAME)
    if state["world_size"] != world_size:
        raise ResumeError(f"{directory} was written by {state['world_size']} process(es), this run has {world_size}; "
                          "exact resume needs the same process count (each process holds its own sampler shard)")
    if not (directory / rank_state_name(0)).is_file():
        pickled = " (its rank_state_0.pt is a pickle of an earlier version, never loaded)" if (
            directory / "rank_state_0.pt").is_file() else ""
        raise ResumeError(f"{directory} is not a training checkpoint: {rank_state_name(0)} is missing{pickled}")
    return state


def check_output_dir(output_dir: Path, start_step: int) -> None:
    """Refuse to start when ``output_dir`` already holds checkpoints after ``start_step`` (they would be
    overwritten, or mixed with this run's).

    Raises:
        FileExistsError: naming the checkpoints found.
    """
    later = sorted(p.name for p in output_dir.glob("checkpoint-*")
                   if p.name.split("-")[-1].isdigit() and int(p.name.split("-")[-1]) > start_step)
    if later:
        raise FileExistsError(f"output_dir {output_dir} already holds {later[:3]}{' ...' if len(later) > 3 else ''} "
                              f"from another run; resume from the latest with --resume, or choose a new output_dir")


# ------------------------------------------------------------------------------------------------ loop


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        records: one dict per optimizer step on this process: ``step`` (1-based), ``lr``, ``loss`` and the loss
            parts present (floats, averaged over accumulated micro-batches), ``task``/``imaging`` of its batches,
            ``samples_per_s``.
        checkpoints: folders written, in order.
        model: the trained model (unwrapped).
    """

    records: list[dict] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    model: MedVersaModel | None = None


def _stage_loss(out, stage: str) -> torch.Tensor:
    if stage != "segmentation":
        return out.loss
    parts = [p for p in (out.seg2d_loss, out.seg3d_loss) if p is not None]
    if not parts:
        raise ValueError("a segmentation-stage batch produced no segmentation loss (no <2DSEG>/<3DSEG> target)")
    return torch.stack(parts).sum()


def train_step(accelerator: Accelerator, model, optimizer, inputs: MedVersaInputs, stage: str,
               max_grad_norm: float | None = None):
    """One minibatch: forward, the stage's loss, backward; the optimizer steps (and gradients are clipped to
    ``max_grad_norm``) when ``accelerator`` has accumulated its ``gradient_accumulation_steps`` minibatches.

    Returns:
        ``(MedVersaOutput, loss)``; the loss is the scalar that was back-propagated.
    """
    with accelerator.accumulate(model):
        out = model(_to_device(inputs, accelerator.device))
        loss = _stage_loss(out, stage)
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm is not None:
            accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
    return out, loss


def train(config: TrainConfig, resume: str | Path | None = None) -> TrainResult:
    """Train MedVersa as ``config`` says, from ``config.init_checkpoint`` or from the training checkpoint ``resume``.

    Run under ``accelerate launch`` (or ``torchrun``) for several processes; a plain call uses one process.
    Checkpoints are written every ``config.save_every`` steps and after the last step (``max_steps`` or
    ``total_steps``).

    Raises:
        engine.data.manifest.ManifestError: invalid manifest rows (before any step).
        ResumeError: ``resume`` is not a checkpoint of this config and process count.
        engine.checkpoint.CheckpointError: the initial checkpoint cannot be loaded.
    """
    mixed_precision, llm_dtype = config.resolved_precision(torch.cuda.is_available())
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # several CPU processes (torchrun) then use gloo instead of no backend
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with="tensorboard" if config.tensorboard else None,
        project_dir=config.output_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    rank, world_size = accelerator.process_index, accelerator.num_processes
    output_dir = Path(config.output_dir)
    resume = None if resume is None else Path(resume)
    state = check_resume_folder(resume, config, world_size) if resume is not None else None
    check_output_dir(output_dir, 0 if state is None else state["step"])
    samples = load_samples(config)
    set_seed(config.seed, device_specific=True)

    model, tokenizer = load_checkpoint(config.init_checkpoint, dtype=getattr(torch, llm_dtype))
    model.config.losses.box = config.box_loss_weight
    # checkpoints point at the base LM where it lies instead of copying it each time
    model.config.llm_path = str(resolve_llm_path(config.init_checkpoint, model.config).resolve())
    configure_stage(model, config.stage)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    sampler = DomainBatchSampler(samples, config.batch_size, imaging_weights=config.imaging_weights,
                                 task_weights=config.task_weights, seed=config.seed, rank=rank, world_size=world_size)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped: MedVersaModel = accelerator.unwrap_model(model)

    step, rank_state = 0, None
    if state is not None:
        load_adapter_weights(unwrapped, resume / ADAPTER_DIR / ADAPTER_WEIGHTS)
        load_module_weights(unwrapped, resume / WEIGHTS_NAME)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        rank_state = load_rank_state(resume / rank_state_name(rank))
        sampler.load_state_dict(rank_state["sampler"])
    accumulation = config.gradient_accumulation_steps
    batches = iter(build_loader(samples, sampler, tokenizer, unwrapped.config, config))
    if rank_state is not None:
        _set_rng_state(rank_state["rng"])  # last: nothing after this draws from the global RNGs before step k+1

    max_steps = config.max_steps or config.total_steps
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if config.tensorboard:
            accelerator.init_trackers("tensorboard")
    result = TrainResult(model=unwrapped)
    progress = tqdm(total=max_steps, initial=step, disable=not (accelerator.is_main_process and config.progress),
                    desc=f"MedVersa {config.stage}", unit="step")
    while step < max_steps:
        started = time.perf_counter()
        totals: dict[str, float] = {}
        kinds, n_samples = [], 0
        for _ in range(accumulation):
            task, imaging, inputs = next(batches)
            kinds.append((task, imaging))
            n_samples += inputs.input_ids.shape[0]
            out, loss = train_step(accelerator, model, optimizer, inputs, config.stage, config.max_grad_norm)
            for name, value in (("loss", loss), *((p, getattr(out, p)) for p in LOSS_PARTS)):
                if value is not None:
                    totals[name] = totals.get(name, 0.0) + value.item() / accumulation
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        step += 1
        elapsed = time.perf_counter() - started
        record = {"step": step, "lr": lr, **totals, "task": kinds[0][0], "imaging": kinds[0][1],
                  "samples_per_s": n_samples * world_size / elapsed}
        if len(set(kinds)) > 1:
            record["tasks"] = [list(k) for k in kinds]
        result.records.append(record)
        _log(accelerator, config, output_dir, record, step)
        progress.update(1)
        progress.set_postfix({k.replace("_loss", ""): f"{v:.4g}" for k, v in totals.items()}
                             | {"samples/s": f"{record['samples_per_s']:.1f}"})
        if step % config.save_every == 0 or step == max_steps:
            result.checkpoints.append(save_training_checkpoint(
                accelerator, unwrapped, tokenizer, optimizer, scheduler, sampler.state_dict(step=step * accumulation),
                step, config))
    progress.close()
    accelerator.end_training()
    return result


def _log(accelerator: Accelerator, config: TrainConfig, output_dir: Path, record: dict, step: int) -> None:
    if step % config.log_every and step != (config.max_steps or config.total_steps):
        return
    if accelerator.is_main_process:
        with open(output_dir / LOG_NAME, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    if config.tensorboard:
        accelerator.log({f"train/{k}": v for k, v in record.items() if isinstance(v, float)}, step=step)


def save_training_checkpoint(accelerator: Accelerator, model: MedVersaModel, tokenizer, optimizer, scheduler,
                             sampler_state: dict, step: int, config: TrainConfig) -> Path:
    """Write ``OUTPUT_DIR/checkpoint-STEP`` (see the module docstring); all processes must call it.

    The folder is written under a temporary name and renamed when every process has written its part, so a run
    killed while saving never leaves a half-written checkpoint under the final name.
    """
    final = Path(config.output_dir) / f"checkpoint-{step:07d}"
    partial_dir = final.with_name(final.name + ".partial")
    partial_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    (partial_dir / rank_state_name(accelerator.process_index)).write_text(
        json.dumps({"sampler": sampler_state, "rng": _rng_state()}), encoding="utf-8")
    if accelerator.is_main_process:
        save_checkpoint(model, tokenizer, partial_dir)
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "world_size": accelerator.num_processes}, partial_dir / TRAINING_STATE_NAME)
        (partial_dir / TRAIN_CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        partial_dir.rename(final)
    accelerator.wait_for_everyone()
    return final
