"""Training loop: schedule, config, collate, joint and segmentation stages, exact resume, two processes.

Tiny random MedVersa (LoRA dropout on, so dropout RNG matters for exact resume) trained on a manifest of real
files: NIH chest PNG + IU report text (report generation), HAM10000 dermoscopy images + lesion masks (2D
segmentation; detection with the box of the real mask's extent), the TotalSegmentator CT + organ mask (3D).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.checkpoint import CheckpointError, load_checkpoint
from engine.configuration import DET_TOKEN, MedVersaConfig
from engine.data.collate import collate
from engine.data.loading import load_example
from engine.data.manifest import ManifestError, write_manifest
from engine.inference import MedVersa
from engine.tiny import write_tiny_checkpoint
from engine.training import ResumeError, learning_rate, train
from engine.training_config import TrainConfig
from tests.browser import free_port
from tests.engine.conftest import iu_reports
from tests.engine.pickles import plant_pickle
from tests.engine.training_fixtures import fixture_samples

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"  # the training manifest's files (tests.engine.training_fixtures)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train faster on one thread (and far faster on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def train_setup(tmp_path_factory, shared_data):
    """(init checkpoint with LoRA dropout 0.1, manifest path, samples)."""
    root = tmp_path_factory.mktemp("train")
    config = MedVersaConfig.tiny()
    config.lora.dropout = 0.1
    texts = [f"FINDINGS: {r['FINDINGS']} IMPRESSION: {r['IMPRESSION']}" for r in iu_reports(shared_data, 100)]
    init = write_tiny_checkpoint(root / "init", texts=texts, seed=0, config=config)
    # a random LM head of std 0.02 gives near-uniform logits that LoRA cannot move in a few steps; std 0.5 can
    weights = load_file(init / "llm" / "model.safetensors")
    weights["lm_head.weight"] *= 25
    save_file(weights, init / "llm" / "model.safetensors")
    samples = fixture_samples(shared_data)
    manifest = write_manifest(samples, root / "train.jsonl")
    return init, manifest, samples


def make_config(train_setup, out: Path, **overrides) -> TrainConfig:
    init, manifest, _ = train_setup
    values = dict(init_checkpoint=str(init), manifest=str(manifest), output_dir=str(out), batch_size=2,
                  total_steps=40, warmup_steps=3, lr=1e-2, min_lr=1e-4, warmup_start_lr=1e-5, save_every=1000,
                  log_every=1, progress=False, seed=3, allowed_roots=[str(SHARED_DATA)])
    values.update(overrides)
    return TrainConfig(**values)


def task_batches(samples, model_config, tokenizer):
    """One un-augmented batch per (task, imaging) group: {"report/chest_xray": MedVersaInputs, ...}."""
    groups = {}
    for sample in samples:
        groups.setdefault(f"{sample.task}/{sample.imaging}", []).append(sample)
    return {key: collate([load_example(s, model_config, None, False) for s in group], tokenizer, model_config)
            for key, group in groups.items()}


def losses(model, batches):
    model.eval()
    with torch.no_grad():
        return {key: model(batch).loss.item() for key, batch in batches.items()}


# ------------------------------------------------------------------------------------------- schedule, config


def test_learning_rate_follows_the_papers_schedule():
    paper = dict(peak=3e-4, total_steps=500_000, warmup_steps=3000, warmup_start=1e-7, minimum=3e-6)
    assert learning_rate(0, **paper) == pytest.approx(1e-7)
    assert learning_rate(1500, **paper) == pytest.approx(1e-7 + (3e-4 - 1e-7) / 2)
    assert learning_rate(3000, **paper) == pytest.approx(3e-4)
    midpoint = 3000 + (500_000 - 3000) // 2
    assert learning_rate(midpoint, **paper) == pytest.approx((3e-4 + 3e-6) / 2)
    assert learning_rate(500_000, **paper) == pytest.approx(3e-6)
    assert learning_rate(600_000, **paper) == pytest.approx(3e-6)
    assert learning_rate(3001, **paper) < learning_rate(3000, **paper)
    with pytest.raises(ValueError, match="warmup_steps"):
        learning_rate(0, peak=1e-3, total_steps=10, warmup_steps=10)


def test_config_defaults_are_the_papers(tmp_path):
    config = TrainConfig("a", "b", "c")
    assert (config.lr, config.min_lr, config.warmup_steps, config.warmup_start_lr) == (3e-4, 3e-6, 3000, 1e-7)
    assert (config.total_steps, config.segmentation_lr, config.stage) == (500_000, 1e-4, "joint")
    # the paper flips for segmentation only and gives no box-loss weight (100: the released code)
    assert (config.flip_detection, config.box_loss_weight) == (False, 100.0)
    with pytest.raises(ValueError, match="box_loss_weight must be >= 0"):
        TrainConfig("a", "b", "c", box_loss_weight=-1.0)


def test_precision_defaults_bf16_on_cuda_and_float32_on_cpu():
    from engine.inference import inference_dtype

    config = TrainConfig("a", "b", "c")
    assert (config.mixed_precision, config.llm_dtype) == ("auto", "auto")
    assert config.resolved_precision(cuda=True) == ("bf16", "bfloat16")
    assert config.resolved_precision(cuda=False) == ("no", "float32")
    assert TrainConfig("a", "b", "c", llm_dtype="bfloat16").resolved_precision(cuda=False) == ("bf16", "bfloat16")
    assert TrainConfig("a", "b", "c", mixed_precision="no").resolved_precision(cuda=True) == ("no", "bfloat16")
    assert inference_dtype("auto", "cuda:0") == torch.bfloat16 and inference_dtype("auto", "cpu") is None
    assert inference_dtype("float32", "cuda") == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        inference_dtype("half", "cpu")


def test_added_token_rows_train_in_float32_over_a_bfloat16_base(train_setup, tmp_path):
    """A bf16 base LM (CPU, bf16 autocast): the added-token rows are peft's float32 delta (a bf16 row would round
    small updates away) and they train; the bf16 base embedding stays as it was."""
    start, _ = load_checkpoint(train_setup[0])
    before = {k: v.clone() for k, v in start.state_dict().items()}
    result = train(make_config(train_setup, tmp_path / "bf16", max_steps=2, llm_dtype="bfloat16", lr=1e-6,
                               warmup_steps=0, warmup_start_lr=1e-6, min_lr=1e-7))
    params = dict(result.model.named_parameters())
    deltas = [k for k in params if "trainable_tokens_delta" in k]
    assert deltas and all(params[k].dtype == torch.float32 for k in deltas)
    assert any(not torch.equal(params[k].detach(), before[k]) for k in deltas)
    base = "backbone.llm.base_model.model.model.embed_tokens.token_adapter.base_layer.weight"
    assert params[base].dtype == torch.bfloat16 and torch.equal(params[base].detach(), before[base].to(torch.bfloat16))


def test_config_files_json_and_yaml_and_clear_errors(tmp_path):
    (tmp_path / "train.yaml").write_text("init_checkpoint: ckpt\nmanifest: [a.jsonl, /data/b.jsonl]\n"
                                         "output_dir: runs\nlr: 0.001\n")
    config = TrainConfig.load(tmp_path / "train.yaml")
    assert config.lr == 1e-3 and config.init_checkpoint == str(tmp_path / "ckpt")
    assert config.manifests == [str(tmp_path / "a.jsonl"), "/data/b.jsonl"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"init_checkpoint": "c", "manifest": "m", "output_dir": "o", "learning_rate": 1e-3}))
    with pytest.raises(ValueError, match=r"bad.json: unknown training config key\(s\) \['learning_rate'\]"):
        TrainConfig.load(bad)
    bad.write_text(json.dumps({"manifest": "m", "output_dir": "o"}))
    with pytest.raises(ValueError, match=r"lacks the required key\(s\) \['init_checkpoint'\]"):
        TrainConfig.load(bad)
    bad.write_text(json.dumps({"init_checkpoint": "c", "manifest": "m", "output_dir": "o", "stage": "seg"}))
    with pytest.raises(ValueError, match="key stage must be one of"):
        TrainConfig.load(bad)
    with pytest.raises(ValueError, match="llm_dtype 'bfloat16' needs mixed_precision 'bf16'"):
        TrainConfig("c", "m", "o", llm_dtype="bfloat16", mixed_precision="no")
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainConfig.load(bad)
    result = subprocess.run([sys.executable, "-m", "engine.train", "--config", str(tmp_path / "bad.json")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "not valid JSON" in result.stderr


# ------------------------------------------------------------------------------------------------ collate


def test_collate_pads_and_concatenates_in_row_order(train_setup):
    init, _, samples = train_setup
    model, tokenizer = load_checkpoint(init)
    config = model.config
    det = [s for s in samples if s.task == "detection"][:2]
    examples = [load_example(s, config, None, False) for s in det]
    batch = collate(examples, tokenizer, config)
    assert batch.input_ids.shape[0] == 2 and batch.pixel_values_2d.shape == (2, 3, 32, 32)
    assert batch.pixel_values_3d is None and batch.image_is_3d.tolist() == [False, False]
    torch.testing.assert_close(batch.boxes, torch.tensor([b.xyxy for s in det for b in s.boxes], dtype=torch.float32))
    for row in range(2):  # labels: the answer " lesion <DET>.###" only, -100 on prompt and padding
        answer = batch.labels[row][batch.labels[row] != -100]
        assert tokenizer.decode(answer) == f" lesion {DET_TOKEN}.###"
        assert int(batch.attention_mask[row].sum()) == int((batch.input_ids[row] != tokenizer.pad_token_id).sum())
    ct = [s for s in samples if s.imaging == "ct"]
    volumes = collate([load_example(s, config, None, False) for s in ct], tokenizer, config)
    assert volumes.pixel_values_3d.shape == (2, 1, 16, 48, 48) and volumes.masks_3d.shape == (2, 1, 16, 48, 48)
    assert volumes.masks_3d[0].sum() > volumes.masks_3d[1].sum() > 0  # liver larger than spleen
    example = examples[0]
    example.boxes = None
    with pytest.raises(ValueError, match=r"example 0 of the batch: the answer holds 1 <DET> token\(s\) but 0 boxes"):
        collate([example], tokenizer, config)


# ------------------------------------------------------------------------------------------------ training


def _changed(before, after, prefix):
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


def test_joint_training_lowers_every_task_loss_and_trains_only_the_trainable(train_setup, tmp_path, shared_data):
    init, _, samples = train_setup
    start, tokenizer = load_checkpoint(init)
    batches = task_batches(samples, start.config, tokenizer)
    before_losses = losses(start, batches)
    before = {k: v.clone() for k, v in start.state_dict().items()}

    result = train(make_config(train_setup, tmp_path / "run", max_steps=30, tensorboard=True))
    trained = result.model
    after_losses = losses(trained, batches)
    for key in batches:
        assert after_losses[key] < 0.95 * before_losses[key], (key, before_losses[key], after_losses[key])
    assert {r["task"] for r in result.records} == {"report", "segmentation", "detection"}

    after = trained.state_dict()
    llm = "backbone.llm.base_model.model.model."
    lora = [k for k in after if "lora_B" in k]
    assert lora and all(not torch.equal(before[k], after[k]) for k in lora)
    assert _changed(before, after, f"{llm}embed_tokens.token_adapter.trainable_tokens_delta")
    for prefix in ("backbone.adapter_2d.", "backbone.adapter_3d.", "backbone.encoder_3d.", "detection_head.",
                   "seg2d_head.", "seg3d_head."):
        assert _changed(before, after, prefix), prefix
    frozen = [k for k in after if k.startswith("backbone.encoder_2d.")
              or (k.startswith("backbone.llm.") and "lora_" not in k and "token_adapter" not in k)]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)

    # the checkpoint holds the trained model: loading it gives the same losses; log and TensorBoard written
    (checkpoint,) = result.checkpoints
    assert checkpoint.name == "checkpoint-0000030"
    reloaded, _ = load_checkpoint(checkpoint)
    assert losses(reloaded, batches) == after_losses
    medversa = MedVersa.from_checkpoint(checkpoint)  # as engine.drafts loads it
    answer = medversa.generate([shared_data / "cxr_png" / "00000001_000.png"], "Please report <img0>.",
                               max_new_tokens=4, do_sample=False)
    assert isinstance(answer.text, str)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 31)) and log[-1]["loss"] == result.records[-1]["loss"]
    assert list((tmp_path / "run").rglob("events.out.tfevents.*"))


def test_segmentation_stage_trains_only_the_segmentation_modules(train_setup, tmp_path):
    init, _, samples = train_setup
    start, _ = load_checkpoint(init)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    result = train(make_config(train_setup, tmp_path / "seg", stage="segmentation", max_steps=4,
                               segmentation_lr=1e-3))
    assert {r["task"] for r in result.records} == {"segmentation"}
    assert result.records[0]["lr"] == pytest.approx(1e-5)  # warm-up start of the segmentation stage
    after = result.model.state_dict()
    for prefix in ("seg2d_head.", "seg3d_head."):
        assert _changed(before, after, prefix), prefix
    # everything that feeds the LLM stays as it was, the 3D UNet encoder (the 3D vision encoder) included
    unchanged = [k for k in after if k.startswith(("backbone.llm.", "backbone.adapter_", "backbone.encoder_2d.",
                                                   "backbone.encoder_3d.", "detection_head."))]
    assert any(k.startswith("backbone.encoder_3d.") for k in unchanged)
    assert any("lora_" in k for k in unchanged) and any("token_adapter" in k for k in unchanged)
    assert all(torch.equal(before[k], after[k]) for k in unchanged)


def test_exact_resume_gives_the_same_losses_bit_for_bit(train_setup, tmp_path):
    settings = dict(max_steps=6, save_every=3, gradient_accumulation_steps=2)
    straight = train(make_config(train_setup, tmp_path / "straight", num_workers=2, **settings))
    assert [c.name for c in straight.checkpoints] == ["checkpoint-0000003", "checkpoint-0000006"]
    stopped = train(make_config(train_setup, tmp_path / "stopped", **{**settings, "max_steps": 3}))
    assert [r["loss"] for r in stopped.records] == [r["loss"] for r in straight.records[:3]]
    for source in (stopped.checkpoints[0], straight.checkpoints[0]):  # a run that stopped, one that went on
        resumed = train(make_config(train_setup, tmp_path / f"resumed-{source.parent.name}", **settings),
                        resume=source)
        assert [r["step"] for r in resumed.records] == [4, 5, 6]
        for key in ("loss", "language_loss", "lr", "task"):
            assert [r.get(key) for r in resumed.records] == [r.get(key) for r in straight.records[3:]], key
    assert len({r["loss"] for r in straight.records}) == 6


def test_resume_refuses_another_config_and_non_checkpoints(train_setup, tmp_path):
    first = train(make_config(train_setup, tmp_path / "a", max_steps=1))
    (checkpoint,) = first.checkpoints
    with pytest.raises(ResumeError, match=r"another training config: lr is 0.01 there and 0.001 here"):
        train(make_config(train_setup, tmp_path / "b", lr=1e-3, max_steps=2), resume=checkpoint)
    with pytest.raises(ResumeError, match="is not a training checkpoint: train_config.json is missing"):
        train(make_config(train_setup, tmp_path / "c", max_steps=2), resume=train_setup[0])
    with pytest.raises(FileExistsError, match=r"already holds \['checkpoint-0000001'\]"):
        train(make_config(train_setup, tmp_path / "a", max_steps=2))
    config_file = tmp_path / "other.json"
    config_file.write_text(json.dumps(make_config(train_setup, tmp_path / "d", seed=9).to_dict()))
    result = subprocess.run([sys.executable, "-m", "engine.train", "--config", str(config_file), "--resume",
                             str(checkpoint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "seed is 3 there and 9 here" in result.stderr


def test_bad_manifest_row_is_refused_before_training_or_skipped_with_a_count(train_setup, tmp_path, caplog):
    _, manifest, _ = train_setup
    broken = json.loads(manifest.read_text().splitlines()[0])
    broken["sample_id"] = "missing-image"
    broken["images"][0]["path"] = str(tmp_path / "no-such.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(broken) + "\n")
    with pytest.raises(ManifestError, match="bad.jsonl:1: .*no-such.png"):
        train(make_config(train_setup, tmp_path / "bad-run", manifest=[str(manifest), str(bad)], max_steps=1))
    assert not (tmp_path / "bad-run" / "checkpoint-0000001").exists()
    with pytest.raises(ValueError, match="sample_id 'iu-0' is in both"):
        train(make_config(train_setup, tmp_path / "twice", manifest=[str(manifest), str(manifest)], max_steps=1))
    with caplog.at_level("WARNING", logger="engine.training"):
        result = train(make_config(train_setup, tmp_path / "skip-run", manifest=[str(manifest), str(bad)],
                                   max_steps=1, skip_invalid=True))
    assert "skipped 1 invalid row(s) of" in caplog.text and len(result.checkpoints) == 1


LAUNCHERS = {
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "bf16", "--dynamo_backend", "no", "--main_process_port", "{port}"],
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "{port}"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_write_one_checkpoint_with_world_size_two(train_setup, tmp_path, launcher):
    """Two CPU processes (gloo) under ``accelerate launch --multi_gpu`` and ``torchrun``, with bf16 autocast and
    activation checkpointing (a fresh process: accelerate fixes the precision once per process). ``--multi_gpu``
    uses the torchrun launcher, and without CUDA the trainer asks for gloo."""
    config_file = tmp_path / "train.json"
    config = make_config(train_setup, tmp_path / "ddp", max_steps=2, batch_size=1, mixed_precision="bf16",
                         gradient_checkpointing=True)
    config_file.write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launch = [arg.format(port=free_port()) for arg in LAUNCHERS[launcher]]
    result = subprocess.run([sys.executable, *launch, "-m", "engine.train", "--config", str(config_file)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = sorted(p.name for p in (tmp_path / "ddp").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-0000002"]
    folder = tmp_path / "ddp" / "checkpoint-0000002"
    state = torch.load(folder / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 2
    sampler_states = [json.loads((folder / f"rank_state_{r}.json").read_text())["sampler"] for r in (0, 1)]
    assert [s["rank"] for s in sampler_states] == [0, 1] and all(s["step"] == 2 for s in sampler_states)
    log = [json.loads(line) for line in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    model, _ = load_checkpoint(folder)
    assert model.config.token_ids


def test_accelerate_launch_without_multi_gpu_on_cpu_is_refused(train_setup, tmp_path):
    """``accelerate launch --num_processes 2`` without ``--multi_gpu`` starts one process on CPU (accelerate's simple
    launcher); training refuses instead of running with world size 1 and naming the flag to use."""
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps(make_config(train_setup, tmp_path / "one", max_steps=1).to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         "-m", "engine.train", "--config", str(config_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "started 1 process" in result.stderr and "--multi_gpu" in result.stderr
    assert not (tmp_path / "one").exists()


def test_resume_refuses_a_planted_pickle_in_each_file_it_reads_and_runs_no_code(train_setup, tmp_path):
    """Issue 18: ``training_state.pt`` and ``rank_state_R.pt`` were read with ``weights_only=False``; a crafted file
    ran code on ``--resume``. Each file a resume reads now refuses a pickle, naming the file."""
    (checkpoint,) = train(make_config(train_setup, tmp_path / "run", max_steps=1)).checkpoints
    marker = tmp_path / "code-ran"
    read_on_resume = ("training_state.pt", "rank_state_0.json", "train_config.json", "model.safetensors",
                      "adapter/adapter_model.safetensors")
    for name in read_on_resume:
        hostile = tmp_path / f"hostile-{name.replace('/', '-')}"
        shutil.copytree(checkpoint, hostile)
        plant_pickle(hostile / name, marker)
        with pytest.raises((ResumeError, CheckpointError)) as refused:
            train(make_config(train_setup, tmp_path / f"out-{hostile.name}", max_steps=2), resume=hostile)
        assert str(hostile / name) in str(refused.value), refused.value
        assert not marker.exists(), f"unpickling {name} ran code"
    hostile = tmp_path / "hostile-training_state.pt"
    with pytest.raises(ResumeError, match="is refused: not a file of tensors and plain values .*the global io.open"):
        train(make_config(train_setup, tmp_path / "out-again", max_steps=2), resume=hostile)
    # an earlier version's pickled rank state is named and never read
    legacy = tmp_path / "legacy"
    shutil.copytree(checkpoint, legacy)
    (legacy / "rank_state_0.json").rename(legacy / "rank_state_0.pt")
    with pytest.raises(ResumeError, match=r"rank_state_0.json is missing \(its rank_state_0.pt is a pickle"):
        train(make_config(train_setup, tmp_path / "out-legacy", max_steps=2), resume=legacy)
    assert not marker.exists()


def test_manifest_files_outside_its_folder_and_allowed_roots_are_refused_before_training(train_setup, tmp_path):
    with pytest.raises(ManifestError, match=r"images\[0\].path '.*' resolves to .*, outside the manifest's folder"):
        train(make_config(train_setup, tmp_path / "run", max_steps=1, allowed_roots=[]))
    assert not (tmp_path / "run").exists()
