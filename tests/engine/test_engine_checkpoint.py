import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from engine.checkpoint import (
    ADAPTER_DIR,
    ADAPTER_WEIGHTS,
    CheckpointError,
    build_model,
    convert_released,
    load_checkpoint,
    module_state_dict,
    save_checkpoint,
)
from engine.configuration import DET_TOKEN, MedVersaConfig
from engine.modeling import MedVersaInputs
from engine.pretrained import read_state_dict
from engine.processing import build_prompt, encode_prompt, pad_sequences
from engine.tiny import train_tokenizer
from tests.engine.pickles import plant_pickle
from tests.engine.published_layouts import hub_swin_layout, smp_unet_2d_layout, swin_relative_position_index


def _inputs(model, tokenizer):
    ids = encode_prompt(tokenizer, build_prompt("Detect heart in <img0>.", 1, model.config)) + \
        tokenizer.encode(f" heart {DET_TOKEN}.###", add_special_tokens=False)
    input_ids, mask = pad_sequences([ids], tokenizer.pad_token_id)
    torch.manual_seed(1)
    return MedVersaInputs(input_ids, mask, pixel_values_2d=torch.randn(1, 3, 32, 32))


def _perturb(model):
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)


def test_save_load_gives_identical_outputs(tiny_checkpoint, tmp_path):
    model, tokenizer = load_checkpoint(tiny_checkpoint)
    _perturb(model)  # LoRA B, new-token rows, adapters and heads all differ from their initial values
    save_checkpoint(model, tokenizer, tmp_path / "saved", base_llm=tiny_checkpoint / "llm")
    loaded, loaded_tokenizer = load_checkpoint(tmp_path / "saved")
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    with torch.no_grad():
        a, b = model.eval()(_inputs(model, tokenizer)), loaded(_inputs(loaded, tokenizer))
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    torch.testing.assert_close(a.boxes, b.boxes, rtol=0, atol=0)
    reference, _ = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        c = reference(_inputs(reference, tokenizer))
    assert not torch.equal(a.logits, c.logits)  # the perturbation was saved, not the original


def _copy(tiny_checkpoint, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, target)
    return target


def test_renamed_adapter_key_is_refused(tiny_checkpoint, tmp_path):
    """Released defect 4: LoRA weights silently not loaded when peft renamed the keys."""
    target = _copy(tiny_checkpoint, tmp_path)
    path = target / ADAPTER_DIR / ADAPTER_WEIGHTS
    weights = load_file(path)
    key = next(k for k in weights if "lora_B" in k)
    weights[key.replace("lora_B.weight", "lora_B.default.weight")] = weights.pop(key)
    save_file(weights, path)
    with pytest.raises(CheckpointError, match="1 missing key.*lora_B.weight.*1 unexpected key.*default"):
        load_checkpoint(target)


def test_missing_parts_and_wrong_tokenizer_are_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "nothing")
    target = _copy(tiny_checkpoint, tmp_path)
    weights = load_file(target / "model.safetensors")
    weights.pop("detection_head.mlp.4.weight")
    save_file(weights, target / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing key.*detection_head.mlp.4.weight"):
        load_checkpoint(target)
    train_tokenizer(["plain"]).save_pretrained(target)
    with pytest.raises(ValueError, match="lacks the MedVersa added tokens"):
        load_checkpoint(target)
    shutil.rmtree(target / "llm")
    (target / "tokenizer.json").unlink()
    shutil.copy(tiny_checkpoint / "tokenizer.json", target / "tokenizer.json")
    shutil.copy(tiny_checkpoint / "tokenizer_config.json", target / "tokenizer_config.json")
    with pytest.raises(CheckpointError, match="no causal LM"):
        load_checkpoint(target)


# Released layout, written independently of the converter's rules (engine-notes.md key groups); the 2D encoder
# (a 2023 transformers SwinModel) and the 2D UNet (segmentation_models_pytorch) from their layout descriptions
# (tests/engine/published_layouts.py), not from our modules.
_RELEASED_PREFIXES = [
    ("backbone.adapter_2d.norm.", "llama_proj_2d.0."), ("backbone.adapter_2d.proj.", "llama_proj_2d.1."),
    ("backbone.adapter_3d.norm.", "llama_proj_3d.0."), ("backbone.adapter_3d.proj.", "llama_proj_3d.1."),
    ("detection_head.mlp.", "text_det."),
    ("seg2d_head.prompt.", "text2seg_2d."), ("seg3d_head.prompt.", "text2seg_3d."),
    ("backbone.encoder_3d.", "model_seg_3d.encoder."), ("seg3d_head.", "model_seg_3d.decoder."),
]
_FROM_LAYOUTS = ("backbone.encoder_2d.", "seg2d_head.encoder.", "seg2d_head.bottleneck_norm.", "seg2d_head.decoder.", "seg2d_head.segmentation_head.")


def _released_name(key):
    for ours, theirs in _RELEASED_PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise AssertionError(key)


def _synthetic_released(model):
    torch.manual_seed(3)
    released = {_released_name(k): torch.randn_like(v.float()) for k, v in module_state_dict(model).items()
                if not k.startswith(_FROM_LAYOUTS)}
    released.update({k: torch.randn(shape) for k, shape in
                     smp_unet_2d_layout(model.config.seg2d.decoder_channels).items()})
    for key, shape in hub_swin_layout(model.config.swin).items():
        if key.startswith("swin."):
            released["visual_encoder." + key[len("swin."):]] = (
                swin_relative_position_index(model.config.swin.window_size)
                if key.endswith("relative_position_index") else torch.randn(shape))
    plain = AutoModelForCausalLM.from_config(model.backbone.llm.get_base_model().config)
    for key, value in plain.state_dict().items():
        name = "lm_head.0.weight" if key == "lm_head.weight" else key
        released[f"llama_model.base_model.model.{name}"] = torch.randn_like(value)
    r, hidden = model.config.lora.r, model.config.hidden_size
    for layer in range(plain.config.num_hidden_layers):
        for proj in ("q_proj", "v_proj"):
            prefix = f"llama_model.base_model.model.model.layers.{layer}.self_attn.{proj}"
            released[f"{prefix}.lora_A.weight"] = torch.randn(r, hidden)
            released[f"{prefix}.lora_B.weight"] = torch.randn(hidden, r)
    return released


def test_converter_maps_released_layout_and_refuses_mismatches(tiny_checkpoint, tmp_path):
    model, tokenizer = load_checkpoint(tiny_checkpoint)
    released = _synthetic_released(model)
    report = convert_released(dict(released), model, tokenizer, tmp_path / "converted")
    assert report.ok and not report.unmatched and not report.unused
    converted, _ = load_checkpoint(tmp_path / "converted")
    det = converted.config.token_ids[DET_TOKEN]
    state = converted.state_dict()
    torch.testing.assert_close(state["detection_head.mlp.4.weight"], released["text_det.4.weight"])
    for key in ("decoder.blocks.1.conv2.1.weight", "decoder.blocks.0.conv1.0.weight", "encoder.layer2.0.downsample.0.weight",
                "encoder.layer4.1.bn2.bias", "segmentation_head.0.bias", "bottleneck_norm.weight"):
        torch.testing.assert_close(state[f"seg2d_head.{key}"], released[f"model_seg_2d.{key}"])
    # 2023 Swin names are renamed to the installed transformers' ones; the position indices are checked and dropped
    torch.testing.assert_close(state["backbone.encoder_2d.swin.encoder.layers.1.blocks.0.attention.q_proj.weight"],
                               released["visual_encoder.encoder.layers.1.blocks.0.attention.self.query.weight"])
    torch.testing.assert_close(state["backbone.encoder_2d.swin.encoder.layers.0.blocks.0.mlp.fc2.bias"],
                               released["visual_encoder.encoder.layers.0.blocks.0.output.dense.bias"])
    assert "visual_encoder.encoder.layers.0.blocks.0.attention.self.relative_position_index" in report.derived
    lora_b = "backbone.llm.base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight"
    torch.testing.assert_close(state[lora_b],
                               released["llama_model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"])
    embedding = converted.backbone.llm.get_input_embeddings()(torch.tensor([det]))[0]
    torch.testing.assert_close(embedding, released["llama_model.base_model.model.model.embed_tokens.weight"][det])

    fresh, _ = load_checkpoint(tiny_checkpoint)
    broken = dict(released)
    broken.pop("text2seg_3d.1.weight")
    broken["llama_proj_4d.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"(?s)llama_proj_4d.*seg3d_head.prompt.1.weight"):
        convert_released(broken, fresh, tokenizer, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    broken = dict(released)
    broken["text_det.4.weight"] = torch.zeros(3, 16)
    with pytest.raises(CheckpointError, match=r"1 shape mismatch.*detection_head.mlp.4.weight"):
        convert_released(broken, fresh, tokenizer, tmp_path / "refused")


def test_build_model_needs_token_ids(tiny_checkpoint):
    config = MedVersaConfig.load(tiny_checkpoint)
    config.token_ids = {}
    tokenizer = train_tokenizer(["x"])
    with pytest.raises(ValueError, match="lacks the MedVersa added tokens"):
        build_model(config, tiny_checkpoint / "llm", tokenizer)


def test_converter_command(tiny_checkpoint, tmp_path, capsys):
    from engine.checkpoint import main

    model, _ = load_checkpoint(tiny_checkpoint)
    released = _synthetic_released(model)
    torch.save(released, tmp_path / "released.pth")
    argv = ["--released", str(tmp_path / "released.pth"), "--llm", str(tiny_checkpoint / "llm"),
            "--tokenizer", str(tiny_checkpoint), "--config", "tiny", "--out", str(tmp_path / "out")]
    main(argv)
    assert "into" in capsys.readouterr().out
    converted, _ = load_checkpoint(tmp_path / "out")
    torch.testing.assert_close(converted.state_dict()["seg3d_head.prompt.1.weight"], released["text2seg_3d.1.weight"])
    released.pop("llama_proj_2d.1.bias")
    torch.save(released, tmp_path / "released.pth")
    with pytest.raises(SystemExit, match="backbone.adapter_2d.proj.bias"):
        main(argv[:-1] + [str(tmp_path / "out2")])


@pytest.mark.parametrize("flag, value", [("--llm", "Llama-2-7b-chat-hf"), ("--released", "missing.pth")])
def test_converter_refuses_paths_that_are_not_local(tiny_checkpoint, tmp_path, capsys, flag, value):
    """A hub-like name or a missing file is refused before anything is loaded (nothing is fetched)."""
    from engine.checkpoint import main

    (tmp_path / "released.pth").write_bytes(b"")
    args = {"--released": str(tmp_path / "released.pth"), "--llm": str(tiny_checkpoint / "llm"),
            "--out": str(tmp_path / "out"), flag: value}
    with pytest.raises(SystemExit):
        main([item for pair in args.items() for item in pair])
    assert f"{flag} {value}: no such" in capsys.readouterr().err


def test_base_llm_weights_are_loaded_strictly(tiny_checkpoint, tmp_path):
    """A weight missing from llm/ must not be replaced by a random one without a word."""
    target = _copy(tiny_checkpoint, tmp_path)
    path = target / "llm" / "model.safetensors"
    original = load_file(path)
    weights = dict(original)
    weights.pop("model.layers.1.self_attn.o_proj.weight")
    save_file(weights, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys \['model.layers.1.self_attn.o_proj.weight'\]"):
        load_checkpoint(target)
    weights = dict(original)
    weights["model.layers.1.self_attn.o_proj.weight"] = torch.zeros(3, 3)
    weights["model.layers.1.self_attn.rotary_scale"] = torch.zeros(2)
    save_file(weights, path)
    with pytest.raises(CheckpointError, match=r"(?s)1 unexpected keys.*rotary_scale.*1 mismatched keys.*o_proj"):
        load_checkpoint(target)


def _inv_freq(theta, head_dim, dtype=torch.float32):
    """RoPE inverse frequencies 1 / theta ** (2i / d) as transformers 4.28-4.30 stored them (Su et al., RoFormer)."""
    return (1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)).to(dtype)


def test_converter_checks_and_drops_2023_rotary_buffers(tiny_checkpoint, tmp_path):
    model, tokenizer = load_checkpoint(tiny_checkpoint)
    llm_config = model.backbone.llm.get_base_model().config
    head_dim = llm_config.hidden_size // llm_config.num_attention_heads  # 32 / 4 = 8 -> 4 frequencies
    key = "llama_model.base_model.model.model.layers.{}.self_attn.rotary_emb.inv_freq"
    released = _synthetic_released(model)
    released[key.format(0)] = _inv_freq(10000.0, head_dim)
    released[key.format(1)] = _inv_freq(10000.0, head_dim, torch.bfloat16)  # a bf16 state dict
    report = convert_released(dict(released), model, tokenizer, tmp_path / "converted")
    assert report.ok and sorted(k for k in report.derived if "inv_freq" in k) == [key.format(0), key.format(1)]
    assert not any("inv_freq" in k for k in report.llm)
    converted, _ = load_checkpoint(tmp_path / "converted")  # strict LM load: nothing extra was written
    torch.testing.assert_close(converted.backbone.llm.get_base_model().model.rotary_emb.inv_freq,
                               _inv_freq(10000.0, head_dim))

    fresh, _ = load_checkpoint(tiny_checkpoint)
    released[key.format(1)] = _inv_freq(500000.0, head_dim)  # another rope theta than the LM config's
    with pytest.raises(CheckpointError, match=r"1 derived value\(s\) differ.*layers\.1\.self_attn\.rotary_emb"):
        convert_released(dict(released), fresh, tokenizer, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    index = "visual_encoder.encoder.layers.1.blocks.0.attention.self.relative_position_index"
    released[index] = released[index].flip(0)  # a Swin built for another window layout
    with pytest.raises(CheckpointError, match=r"2 derived value\(s\) differ.*layers\.1\.blocks\.0\.attention"):
        convert_released(dict(released), fresh, tokenizer, tmp_path / "refused")
    released[key.format(1)] = _inv_freq(10000.0, head_dim + 2)
    with pytest.raises(CheckpointError, match=r"derived value.*\(5,\)"):
        convert_released(released, fresh, tokenizer, tmp_path / "refused")


def test_corrupt_files_are_refused_with_their_path(tiny_checkpoint, tmp_path):
    """A truncated weights file, a config.json or tokenizer.json that is not JSON, a folder of another model: each a
    CheckpointError naming the file, never a bare library error."""
    target = _copy(tiny_checkpoint, tmp_path)
    weights = (target / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(weights[:len(weights) // 2])
    with pytest.raises(CheckpointError, match=f"unreadable weights file {target / 'model.safetensors'}: .*incomplete"):
        load_checkpoint(target)
    shutil.copy(tiny_checkpoint / "model.safetensors", target / "model.safetensors")
    adapter = target / ADAPTER_DIR / ADAPTER_WEIGHTS
    adapter.write_bytes(adapter.read_bytes()[:5])
    with pytest.raises(CheckpointError, match=f"unreadable weights file {adapter}: .*header too small"):
        load_checkpoint(target)
    (target / "tokenizer.json").write_text("garbage")
    with pytest.raises(CheckpointError, match=f"{target / 'tokenizer.json'} is refused: not a JSON tokenizer file"):
        load_checkpoint(target)
    (target / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=f"{target / 'config.json'} is not valid JSON"):
        load_checkpoint(target)
    with pytest.raises(CheckpointError, match=f"{tiny_checkpoint / 'llm' / 'config.json'} is not a MedVersa config: "
                                              r"unknown MedVersa config keys: \['architectures'"):
        load_checkpoint(tiny_checkpoint / "llm")
    llm = _copy(tiny_checkpoint, tmp_path / "llm-truncated")
    lm_weights = llm / "llm" / "model.safetensors"
    lm_weights.write_bytes(lm_weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"cannot load the causal LM in {llm / 'llm'}: "):
        load_checkpoint(llm)


def test_a_planted_pickle_in_any_file_of_a_checkpoint_is_refused_and_runs_no_code(tiny_checkpoint, tmp_path):
    """Issue 18: nothing a checkpoint load reads is unpickled beyond tensors and plain values; each planted pickle
    is refused with a message naming the file, and the pickle never runs."""
    marker = tmp_path / "code-ran"
    read_on_load = ("config.json", "tokenizer.json", "tokenizer_config.json", "llm/config.json",
                    "llm/model.safetensors", "llm/pytorch_model.bin", "adapter/adapter_model.safetensors",
                    "model.safetensors")
    for name in read_on_load:
        hostile = tmp_path / f"hostile-{name.replace('/', '-')}"
        shutil.copytree(tiny_checkpoint, hostile)
        if name == "llm/pytorch_model.bin":  # the LM's weights as a PyTorch file instead of safetensors
            (hostile / "llm" / "model.safetensors").unlink()
        plant_pickle(hostile / name, marker)
        with pytest.raises(CheckpointError) as refused:
            load_checkpoint(hostile)
        assert str(hostile / name) in str(refused.value), (name, str(refused.value))
        assert not marker.exists(), f"unpickling {name} ran code"
    plant_pickle(tmp_path / "released.pt", marker)
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'released.pt'} is refused: .*the global io.open"):
        convert_released(tmp_path / "released.pt", None, None, tmp_path / "converted")
    plant_pickle(tmp_path / "resnet18.pth", marker)
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'resnet18.pth'} is refused: .*the global io.open"):
        read_state_dict(tmp_path / "resnet18.pth")
    assert not marker.exists() and not (tmp_path / "converted").exists()
