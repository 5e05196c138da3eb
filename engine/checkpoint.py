"""Checkpoints: our own format, and a converter from the released MedVersa state-dict layout.

Our format (one folder):

- ``config.json``: :class:`engine.configuration.MedVersaConfig` (with the added-token ids);
- the tokenizer files (``tokenizer.json``, ``tokenizer_config.json``) with the added tokens;
- ``llm/`` (or ``config.llm_path``): the base causal LM, ``AutoModelForCausalLM``-loadable;
- ``adapter/``: the peft adapter (LoRA on q/v and the trainable added-token rows);
- ``model.safetensors``: everything else (encoders, adapters, heads).

Loading is strict: a missing, unexpected or reshaped key in the base LM, the adapter or the module weights raises
:class:`CheckpointError` (the released code loaded LoRA with ``strict=False`` and silently lost it when peft
renamed keys: defect 4).
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.conversion_mapping import get_checkpoint_conversion_mapping

from engine.configuration import ADDED_TOKENS, CONFIG_NAME, MedVersaConfig
from engine.modeling import MedVersaModel, attach_lora
from engine.processing import check_tokenizer

WEIGHTS_NAME = "model.safetensors"
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
LLM_PREFIX = "backbone.llm."
#: The tokenizer files a checkpoint holds (JSON).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, or does not match the model it is loaded into."""


def module_state_dict(model: MedVersaModel) -> dict[str, torch.Tensor]:
    """The non-LLM weights (encoders, adapters, heads) keyed as in ``model.state_dict()``."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(LLM_PREFIX)}


def resolve_llm_path(directory: str | Path, config: MedVersaConfig) -> Path:
    """The base LM folder: ``config.llm_path`` if absolute, else relative to the checkpoint ``directory``."""
    path = Path(config.llm_path)
    return path if path.is_absolute() else Path(directory) / path


def build_model(config: MedVersaConfig, llm_path: str | Path, tokenizer: PreTrainedTokenizerBase,
                dtype: torch.dtype | None = None) -> MedVersaModel:
    """Load the base LM from a local folder, resize its embeddings to the tokenizer, attach LoRA, add heads.

    The LM is loaded strictly: every weight its architecture expects must be in the folder, with its shape
    (``transformers`` would otherwise initialise a missing weight at random and only log it).

    Raises:
        CheckpointError: the LM folder is missing or unreadable (a truncated weights file, a broken config), or
            its weights lack, add or reshape keys of the architecture its ``config.json`` describes.
        ValueError: the tokenizer lacks the added tokens or their ids differ from ``config.token_ids``.
    """
    check_tokenizer(tokenizer, config)
    llm_path = Path(llm_path)
    if not (llm_path / "config.json").is_file():
        raise CheckpointError(f"no causal LM (config.json) in {llm_path}")
    # mismatched shapes are reported in ``info`` (and refused below) instead of a bare RuntimeError
    try:
        llm, info = AutoModelForCausalLM.from_pretrained(llm_path, dtype=dtype, output_loading_info=True,
                                                         ignore_mismatched_sizes=True, local_files_only=True)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load the causal LM in {llm_path}: {err}") from err
    except (SafetensorError, pickle.UnpicklingError) as err:  # transformers reads a .bin with weights_only=True
        files = [str(f) for f in sorted(llm_path.glob("*.safetensors")) + sorted(llm_path.glob("*.bin"))]
        raise CheckpointError(f"cannot load the causal LM in {llm_path}: weights {', '.join(files)} refused: "
                              f"{_load_failure(err)}") from err
    problems = [f"{len(info[kind])} {kind.replace('_', ' ')} {sorted(info[kind])[:5]}"
                for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs") if info[kind]]
    if problems:
        raise CheckpointError(f"causal LM weights in {llm_path} do not match its config: " + "; ".join(problems))
    if llm.get_input_embeddings().num_embeddings < len(tokenizer):
        llm.resize_token_embeddings(len(tokenizer))
    return MedVersaModel(config, attach_lora(llm, config))


def save_checkpoint(model: MedVersaModel, tokenizer: PreTrainedTokenizerBase, directory: str | Path,
                    base_llm: str | Path | None = None) -> Path:
    """Write ``model`` in our format into ``directory``.

    Args:
        base_llm: folder of the base LM to copy into ``directory/llm`` (then ``config.llm_path = "llm"``);
            ``None`` keeps ``config.llm_path``, which must then be absolute or already inside ``directory``.

    Raises:
        CheckpointError: the base LM would not be found from the saved checkpoint.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    if base_llm is not None:
        target = directory / "llm"
        if Path(base_llm).resolve() != target.resolve():
            shutil.copytree(base_llm, target, dirs_exist_ok=True)
        config.llm_path = "llm"
    if not (resolve_llm_path(directory, config) / "config.json").is_file():
        raise CheckpointError(f"base LM {config.llm_path!r} is not reachable from {directory}; pass base_llm")
    config.save(directory)
    tokenizer.save_pretrained(directory)
    model.backbone.llm.save_pretrained(directory / ADAPTER_DIR)
    save_file({k: v.contiguous() for k, v in module_state_dict(model).items()}, directory / WEIGHTS_NAME)
    return directory


def load_checkpoint(directory: str | Path, dtype: torch.dtype | None = None,
                    device: str | torch.device = "cpu") -> tuple[MedVersaModel, PreTrainedTokenizerBase]:
    """Load a checkpoint written by :func:`save_checkpoint`; returns ``(model in eval mode, tokenizer)``.

    Raises:
        FileNotFoundError: the folder or its ``config.json`` is missing.
        CheckpointError: ``config.json`` not JSON or not a MedVersa config (e.g. another model's folder), an
            unloadable tokenizer, adapter or module weights missing or unreadable (truncated), or keys/shapes that
            do not match the model; the message names the file.
        ValueError: tokenizer without the added tokens or with other ids than the config.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {directory}")
    try:
        config = MedVersaConfig.load(directory)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{directory / CONFIG_NAME} is not valid JSON: {err}") from err
    except (TypeError, ValueError) as err:  # unknown keys: a config written by another program
        raise CheckpointError(f"{directory / CONFIG_NAME} is not a MedVersa config: {err}") from err
    for name in TOKENIZER_FILES:  # named when unreadable (the tokenizer loader names only the folder)
        if (directory / name).is_file():
            try:
                json.loads((directory / name).read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise CheckpointError(f"{directory / name} is refused: not a JSON tokenizer file ({err})") from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load the tokenizer in {directory}: {err}") from err
    model = build_model(config, resolve_llm_path(directory, config), tokenizer, dtype=dtype)
    load_adapter_weights(model, directory / ADAPTER_DIR / ADAPTER_WEIGHTS)
    load_module_weights(model, directory / WEIGHTS_NAME)
    return model.to(device).eval(), tokenizer


def _check_keys(what: str, expected: set[str], given: set[str]) -> None:
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: {len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected key(s) {unexpected[:5]}"
        )


def load_torch_file(path: str | Path):
    """The object a ``torch.save`` file holds, read with ``torch.load(weights_only=True)``: tensors, numbers,
    strings and containers only. The project's one way of reading a ``torch.save`` file: a crafted pickle (one that
    would import or call anything) is refused before any of it runs.

    Raises:
        CheckpointError: ``path`` is missing, not a ``torch.save`` file, or holds anything but tensors and plain
            values; the message names the file and what was refused.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} is refused: not a file of tensors and plain values (a pickle that would "
                              f"import or call code is never loaded): {_load_failure(err)}") from err


def _load_failure(err: Exception) -> str:
    """The reason in a ``torch.load`` error, without its advice to retry with ``weights_only=False``."""
    text = str(err)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return f"it asks for the global {refused.group(1)} (only tensors and plain values are allowed)"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return "it holds objects other than tensors and plain values" if first.startswith("Weights only") else first


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"unreadable weights file {path}: {err}") from err


def load_adapter_weights(model: MedVersaModel, path: str | Path) -> None:
    """Load LoRA and added-token rows strictly: every adapter key must be present and used.

    Raises:
        CheckpointError: file missing or unreadable, or key sets differ.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"adapter weights not found: {path}")
    weights = _read_weights(path)
    _check_keys(f"adapter {path}", set(get_peft_model_state_dict(model.backbone.llm)), set(weights))
    result = set_peft_model_state_dict(model.backbone.llm, weights)
    if result.unexpected_keys:
        raise CheckpointError(f"adapter {path}: peft did not use {sorted(result.unexpected_keys)[:5]}")


def load_module_weights(model: MedVersaModel, path: str | Path) -> None:
    """Load encoder/adapter/head weights strictly.

    Raises:
        CheckpointError: file missing or unreadable, key sets differ, or a shape differs.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"module weights not found: {path}")
    weights = _read_weights(path)
    _check_keys(f"module weights {path}", set(module_state_dict(model)), set(weights))
    try:
        model.load_state_dict(weights, strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"module weights {path}: {err}") from err


# ------------------------------------------------------------------------- released-checkpoint converter

#: Released key -> our key, as (regex, replacement) pairs tried in order; the first match wins. The group
#: prefixes come from engine-notes.md; the sub-module names inside each group are our reading of the released
#: layout: the 2D UNet is a ``segmentation_models_pytorch`` ``Unet`` (torchvision ResNet-18 encoder names, decoder
#: ``blocks.{i}.conv{1,2}.{0: conv, 1: norm}``, ``segmentation_head.0``), which our
#: :class:`engine.heads.SegmentationHead2D` mirrors name for name. Targets are ``adapter:``/``llm:`` keys, module keys,
#: or ``derived:NAME`` for buffers our model recomputes from its config (:data:`DERIVED_BUFFERS`): those are checked
#: against the recomputed value and dropped. Any key that matches no rule, and any key of ours that receives
#: nothing, is reported and conversion stops.
_LLM = r"llama_model\.base_model\.model\."
RELEASED_RULES: tuple[tuple[str, str], ...] = (
    # transformers 4.28-4.30 saved Llama's rotary inverse frequencies as a persistent buffer of every layer
    (_LLM + r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$", r"derived:rotary_inv_freq"),
    (_LLM + r"(model\.layers\.\d+\.self_attn\.[qv]_proj)\.(lora_[AB])\.weight$", r"adapter:\1.\2.weight"),
    (_LLM + r"lm_head\.0\.weight$", r"llm:lm_head.weight"),
    (_LLM + r"(model\..+)$", r"llm:\1"),
    # 2023 transformers' Swin kept each block's relative position index as a persistent buffer
    (r"visual_encoder\..+\.relative_position_index$", r"derived:swin_relative_position_index"),
    (r"visual_encoder\.(.+)$", r"backbone.encoder_2d.swin.\1"),
    (r"llama_proj_2d\.0\.(weight|bias)$", r"backbone.adapter_2d.norm.\1"),
    (r"llama_proj_2d\.1\.(weight|bias)$", r"backbone.adapter_2d.proj.\1"),
    (r"llama_proj_3d\.0\.(weight|bias)$", r"backbone.adapter_3d.norm.\1"),
    (r"llama_proj_3d\.1\.(weight|bias)$", r"backbone.adapter_3d.proj.\1"),
    (r"text_det\.(\d)\.(weight|bias)$", r"detection_head.mlp.\1.\2"),
    (r"text2seg_2d\.(\d)\.(weight|bias)$", r"seg2d_head.prompt.\1.\2"),
    (r"text2seg_3d\.(\d)\.(weight|bias)$", r"seg3d_head.prompt.\1.\2"),
    (r"model_seg_2d\.(encoder|bottleneck_norm|decoder|segmentation_head)\.(.+)$", r"seg2d_head.\1.\2"),
    (r"model_seg_3d\.encoder\.(.+)$", r"backbone.encoder_3d.\1"),
    (r"model_seg_3d\.decoder\.(.+)$", r"seg3d_head.\1"),
)


SWIN_PREFIX = "backbone.encoder_2d.swin."


def current_swin_name(key: str) -> str:
    """A ``SwinModel`` parameter name as the installed ``transformers`` calls it: names of earlier versions
    (``attention.self.query``, ``intermediate.dense``, ...) are renamed with ``transformers``' own checkpoint
    conversion mapping for Swin; current names are returned unchanged."""
    for renaming in get_checkpoint_conversion_mapping("swin"):
        key, _ = renaming.rename_source_key(key)
    return key


def derived_buffers(model: MedVersaModel) -> dict[str, torch.Tensor]:
    """Values of the ``derived:`` targets of :data:`RELEASED_RULES`, recomputed in float32 from the base LM's
    config: ``rotary_inv_freq`` ``(head_dim / 2,)`` = ``1 / theta ** (2i / head_dim)`` for the configured rope
    type and theta (the LM's own rotary-embedding class, so scaling variants are included), and
    ``swin_relative_position_index`` ``(window**2, window**2)`` long, as the 2D encoder's Swin computes it."""
    base = model.backbone.llm.get_base_model()
    rotary = type(base.model.rotary_emb)(config=base.config)
    area = model.config.swin.window_size ** 2  # one window size: the same index in every block
    swin_index = next(b for n, b in model.backbone.encoder_2d.swin.named_buffers()
                      if n.endswith("relative_position_index")).reshape(area, area)
    return {"rotary_inv_freq": rotary.inv_freq.float(), "swin_relative_position_index": swin_index}


def _same_value(given: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal up to two units in the last place of ``given``'s dtype (the released file may be bf16/fp16); integer
    tensors exactly."""
    if given.shape != expected.shape:
        return False
    if not given.is_floating_point():
        return not expected.is_floating_point() and torch.equal(given, expected.to(given.dtype))
    tolerance = 2 * torch.finfo(given.dtype).eps
    return torch.allclose(given.float(), expected.to(given.dtype).float(), rtol=tolerance, atol=0.0)


@dataclass
class ConversionReport:
    """What the converter did.

    Attributes:
        llm: base-LM weights keyed as ``AutoModelForCausalLM`` expects.
        adapter: peft adapter weights keyed as ``get_peft_model_state_dict`` returns them (LoRA, added-token rows).
        modules: encoder/adapter/head weights keyed as :func:`module_state_dict`.
        unmatched: released keys that match no rule.
        unused: our keys (modules and adapter) that received no released weight.
        shape_mismatches: ``our key -> (released shape, expected shape)``.
        derived: released keys that our model recomputes from its config (rotary inverse frequencies, Swin
            relative position indices), checked
            equal to the recomputed value and dropped.
        derived_mismatches: ``released key -> problem`` for derived keys whose value or shape differs.
    """

    llm: dict[str, torch.Tensor] = field(default_factory=dict)
    adapter: dict[str, torch.Tensor] = field(default_factory=dict)
    modules: dict[str, torch.Tensor] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    shape_mismatches: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    derived: list[str] = field(default_factory=list)
    derived_mismatches: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.unmatched or self.unused or self.shape_mismatches or self.derived_mismatches)

    def summary(self) -> str:
        """One line per problem, for the error message."""
        lines = [f"{len(self.unmatched)} released key(s) match no rule: {self.unmatched[:10]}",
                 f"{len(self.unused)} model key(s) received no weight: {self.unused[:10]}",
                 f"{len(self.shape_mismatches)} shape mismatch(es): {dict(list(self.shape_mismatches.items())[:5])}",
                 f"{len(self.derived_mismatches)} derived value(s) differ from the model config: "
                 f"{dict(list(self.derived_mismatches.items())[:5])}"]
        return "\n".join(lines)


def map_released_state_dict(released: dict[str, torch.Tensor], model: MedVersaModel) -> ConversionReport:
    """Rename a released MedVersa state dict to our layout and account for every key.

    The added-token rows of the embedding and LM head (released ids 32000-32004, in the order of
    :data:`engine.configuration.ADDED_TOKENS`) are copied into the adapter's trainable-token rows. Keys mapped to
    ``derived:`` targets are compared with :func:`derived_buffers` and listed in ``report.derived`` (dropped) or
    ``report.derived_mismatches``.

    Returns:
        A :class:`ConversionReport`; :func:`convert_released` refuses to write anything unless ``report.ok``.
    """
    report = ConversionReport()
    derived = derived_buffers(model)
    for key, tensor in released.items():
        for pattern, replacement in RELEASED_RULES:
            if re.match(pattern, key):
                target = re.sub(pattern, replacement, key)
                break
        else:
            report.unmatched.append(key)
            continue
        kind, _, name = target.partition(":") if ":" in target else ("modules", "", target)
        if name.startswith(SWIN_PREFIX):
            name = SWIN_PREFIX + current_swin_name(name[len(SWIN_PREFIX):])
        if kind == "derived":
            expected_value = derived[name]
            if _same_value(tensor, expected_value):
                report.derived.append(key)
            else:
                report.derived_mismatches[key] = (
                    f"{tuple(tensor.shape)} {tensor.dtype} {tensor.flatten()[:4].tolist()} != recomputed "
                    f"{tuple(expected_value.shape)} {expected_value[:4].tolist()}")
        elif kind == "adapter":
            report.adapter[f"base_model.model.{name}"] = tensor
        elif kind == "llm":
            report.llm[name] = tensor
        else:
            report.modules[name] = tensor
    ids = [model.config.token_ids[t] for t in ADDED_TOKENS]
    peft_keys = get_peft_model_state_dict(model.backbone.llm)
    for source, key in (("model.embed_tokens.weight", "embed_tokens"), ("lm_head.weight", "lm_head")):
        delta_key = f"base_model.model.{'model.' if key == 'embed_tokens' else ''}{key}.token_adapter.trainable_tokens_delta"
        if delta_key in peft_keys and source in report.llm:
            report.adapter[delta_key] = report.llm[source][ids].clone()
    with torch.device("meta"):
        plain_llm = AutoModelForCausalLM.from_config(model.backbone.llm.get_base_model().config)
    expected = {**module_state_dict(model), **peft_keys,
                **{f"llm:{k}": v for k, v in plain_llm.state_dict().items()}}
    given = {**report.modules, **report.adapter, **{f"llm:{k}": v for k, v in report.llm.items()}}
    report.unused = sorted(k for k in expected if k not in given and not k.endswith("num_batches_tracked"))
    report.unmatched += sorted(k for k in given if k not in expected)
    for key in sorted(set(given) & set(expected)):
        if tuple(given[key].shape) != tuple(expected[key].shape):
            report.shape_mismatches[key] = (tuple(given[key].shape), tuple(expected[key].shape))
    return report


def convert_released(released: dict[str, torch.Tensor] | str | Path, model: MedVersaModel,
                     tokenizer: PreTrainedTokenizerBase, out: str | Path) -> ConversionReport:
    """Convert a released MedVersa state dict (a dict or a ``torch.save`` file) into our format in ``out``.

    ``model`` is a freshly built model of the matching configuration (:func:`build_model`) whose weights are
    replaced. The base LM with the released weights is written to ``out/llm``.

    Raises:
        CheckpointError: any released key matched no rule, any model key received no weight, a shape differs,
            or a derived buffer (rotary inverse frequencies) differs from the value the LM config gives (the
            message lists them); nothing is written in that case.
    """
    if not isinstance(released, dict):
        released = load_torch_file(released)
    report = map_released_state_dict(released, model)
    if not report.ok:
        raise CheckpointError("released checkpoint does not match the model:\n" + report.summary())
    out = Path(out)
    base = model.backbone.llm.get_base_model()
    llm_dir = out / "llm"
    llm_dir.mkdir(parents=True, exist_ok=True)
    base.config.save_pretrained(llm_dir)
    save_file({k: v.contiguous() for k, v in report.llm.items()}, llm_dir / "model.safetensors")
    set_peft_model_state_dict(model.backbone.llm, report.adapter)
    model.load_state_dict(report.modules, strict=False)
    model.config.llm_path = "llm"
    save_checkpoint(model, tokenizer, out)
    return report


def main(argv: list[str] | None = None) -> None:
    """``python -m engine.checkpoint --released FILE --llm DIR --out DIR``: convert a released checkpoint.

    ``--llm`` is the base LM folder (Llama-2-7B-chat in Hugging Face layout); ``--tokenizer`` defaults to it.
    The added tokens are appended in the released order, so their ids follow the base vocabulary
    (32000-32004 for Llama-2). Exits with the list of unmatched/unused keys when the layout does not match.
    """
    import argparse

    from engine.processing import add_medversa_tokens

    parser = argparse.ArgumentParser(description="Convert a released MedVersa state dict to our checkpoint format.")
    parser.add_argument("--released", required=True, type=Path, help="torch.save file of the released state dict")
    parser.add_argument("--llm", required=True, type=Path, help="base causal LM folder (Llama-2-7B-chat)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default: --llm)")
    parser.add_argument("--config", choices=["7b", "tiny"], default="7b")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    for flag, path, is_folder in (("--released", args.released, False), ("--llm", args.llm, True),
                                  ("--tokenizer", args.tokenizer, True)):
        if path is not None and not (path.is_dir() if is_folder else path.is_file()):
            parser.error(f"{flag} {path}: no such {'folder' if is_folder else 'file'} (weights load from local paths only)")
    config = MedVersaConfig.paper_7b() if args.config == "7b" else MedVersaConfig.tiny()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.llm, local_files_only=True)
    add_medversa_tokens(tokenizer, config)
    model = build_model(config, args.llm, tokenizer, dtype=torch.bfloat16 if args.config == "7b" else None)
    try:
        report = convert_released(args.released, model, tokenizer, args.out)
    except CheckpointError as err:
        raise SystemExit(str(err)) from err
    print(f"converted {len(report.llm)} LM, {len(report.adapter)} adapter and {len(report.modules)} module tensors "
          f"into {args.out}")


if __name__ == "__main__":
    main()
