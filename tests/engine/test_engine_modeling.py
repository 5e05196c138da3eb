import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.inference import MedVersa
from engine.modeling import MedVersaInputs
from engine.processing import Task, build_prompt, encode_example, instruction, pad_sequences


@pytest.fixture()
def trainable(tiny_checkpoint):
    torch.manual_seed(0)
    model, tokenizer = load_checkpoint(tiny_checkpoint)
    return model.train(), tokenizer


def _batch(model, tokenizer, question, answer, images_2d=None, images_3d=None, **targets):
    n = (0 if images_2d is None else len(images_2d)) + (0 if images_3d is None else len(images_3d))
    ids, labels = encode_example(tokenizer, build_prompt(question, n, model.config), answer)
    input_ids, mask = pad_sequences([ids], tokenizer.pad_token_id)
    return MedVersaInputs(input_ids, mask, torch.tensor([labels]), images_2d, images_3d, **targets)


def test_shapes_real_images_give_nine_tokens(medversa, cxr_dicom, nifti_ct, shared_data):
    backbone = medversa.model.backbone
    xray = medversa.prepare_image(cxr_dicom)
    ct = medversa.prepare_image(nifti_ct)
    series = medversa.prepare_image(shared_data / "dicom" / "ct_series")
    assert xray.pixel_values.shape == (3, 32, 32)
    assert ct.pixel_values.shape == series.pixel_values.shape == (1, 16, 48, 48)
    with torch.no_grad():
        feature_map = backbone.encoder_2d(xray.pixel_values[None])
        assert feature_map.shape == (1, 16, 4, 4)
        tokens, features = backbone.encode_images(
            xray.pixel_values[None], torch.stack([ct.pixel_values, series.pixel_values]),
            torch.tensor([False, True, True]))
    assert tokens.shape == (3, 9, 32)
    assert [tuple(f.shape[1:]) for f in features] == [(4, 16, 48, 48), (8, 8, 24, 24), (8, 4, 12, 12),
                                                      (8, 2, 6, 6), (8, 1, 3, 3)]
    torch.testing.assert_close(tokens[0], backbone.adapter_2d(feature_map)[0])


def test_placeholder_count_must_match_images(medversa):
    backbone = medversa.model.backbone
    ids = torch.tensor([[1] + [medversa.config.token_ids["<ImageHere>"]] * 9])
    with pytest.raises(ValueError, match="9 image placeholder tokens but 2 images"):
        backbone.embed(ids, torch.zeros(2, 9, 32))


def _seg_batch(model, tokenizer, task, mv, cxr_dicom, nifti_ct):
    if task == "seg3d":
        volume = mv.prepare_image(nifti_ct).pixel_values[None]
        return _batch(model, tokenizer, instruction(Task.SEGMENTATION, target="liver"),
                      f"The segmentation mask of liver is {SEG3D_TOKEN}.", images_3d=volume,
                      masks_3d=(volume > 0.5).float())
    image = mv.prepare_image(cxr_dicom).pixel_values[None]
    return _batch(model, tokenizer, instruction(Task.SEGMENTATION, target="lung"),
                  f"The segmentation mask of lung is {SEG2D_TOKEN}.", image, masks_2d=(image[:, :1] > 0).float())


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("task", ["report", "detection", "seg2d", "seg3d"])
def test_forward_each_task_loss_and_gradients(trainable, task, cxr_dicom, nifti_ct):
    model, tokenizer = trainable
    mv = MedVersa(model, tokenizer)  # for prepare_image; it puts the model in eval mode
    model.train()
    if task in ("seg2d", "seg3d"):
        batch = _seg_batch(model, tokenizer, task, mv, cxr_dicom, nifti_ct)
    else:
        image = mv.prepare_image(cxr_dicom).pixel_values[None]
        if task == "report":
            batch = _batch(model, tokenizer, "Please report <img0>.", "FINDINGS: Clear lungs.", image)
        else:
            batch = _batch(model, tokenizer, instruction(Task.DETECTION, target="heart, lung"),
                           f"heart {DET_TOKEN}. lung {DET_TOKEN}. nodule <N/A>.", image,
                           boxes=torch.tensor([[0.3, 0.4, 0.7, 0.8], [0.1, 0.1, 0.5, 0.9]]))
    out = model(batch)
    assert torch.isfinite(out.loss)
    expected_parts = {"report": [], "detection": ["box_loss"], "seg2d": ["seg2d_loss"], "seg3d": ["seg3d_loss"]}
    for part in expected_parts[task]:
        assert getattr(out, part) is not None and getattr(out, part).item() > 0
    if task == "detection":  # SmoothL1 on the head's raw outputs, weighted 100 (released code)
        torch.testing.assert_close(out.box_loss, torch.nn.functional.smooth_l1_loss(out.boxes, batch.boxes))
        torch.testing.assert_close(out.loss, out.language_loss + 100 * out.box_loss)
    out.loss.backward()
    grads = _grads(model)
    nonzero = {n for n, g in grads.items() if g is not None and g.abs().sum() > 0}
    assert any("lora_B" in n for n in nonzero)  # lora_A starts multiplied by a zero B
    assert any("lm_head" in n and "trainable_tokens_delta" in n for n in nonzero)
    if task != "report":  # the task token is an input there, so its embedding row learns
        assert any("embed_tokens" in n and "trainable_tokens_delta" in n for n in nonzero)
    if task == "seg3d":
        assert any(n.startswith("backbone.adapter_3d") for n in nonzero)
        assert any(n.startswith("seg3d_head") for n in nonzero)
        assert any(n.startswith("backbone.encoder_3d") for n in nonzero)
    else:
        assert any(n.startswith("backbone.adapter_2d") for n in nonzero)
    if task == "detection":
        assert any(n.startswith("detection_head") for n in nonzero)
    if task == "seg2d":
        assert any(n.startswith("seg2d_head.encoder") for n in nonzero)
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)
    assert not any(p.requires_grad for p in model.backbone.encoder_2d.parameters())
    assert model.training and not model.backbone.encoder_2d.swin.training
    base = model.backbone.llm.get_base_model()
    assert not base.model.layers[0].self_attn.q_proj.base_layer.weight.requires_grad


def test_target_count_mismatch_is_an_error(trainable, cxr_dicom):
    model, tokenizer = trainable
    image = MedVersa(model, tokenizer).prepare_image(cxr_dicom).pixel_values[None]
    batch = _batch(model, tokenizer, instruction(Task.DETECTION, target="heart"), f"heart {DET_TOKEN}.", image,
                   boxes=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="2 boxes targets given but the input holds 1 <DET>"):
        model(batch)


def test_training_steps_on_real_image_and_report_lower_the_loss(trainable, cxr_dicom, iu_report):
    model, tokenizer = trainable
    image = MedVersa(model, tokenizer).prepare_image(cxr_dicom).pixel_values[None]
    answer = f"FINDINGS: {iu_report['FINDINGS']} IMPRESSION: {iu_report['IMPRESSION']}"
    batch = _batch(model, tokenizer, instruction(Task.REPORT, index=2), answer, image)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-2)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = model(batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # only LoRA (r=4 on q/v), adapters and new-token rows train, so at tiny size the loss falls slowly but steadily
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[0] - losses[-1] > 0.05, losses


@pytest.mark.parametrize("task", ["seg2d", "seg3d"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(trainable, task, cxr_dicom, nifti_ct):
    model, tokenizer = trainable
    batch = _seg_batch(model, tokenizer, task, MedVersa(model, tokenizer), cxr_dicom, nifti_ct)
    model.train()

    def step():
        model.zero_grad()
        out = model(batch)
        out.loss.backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    calls = []
    llm_mlp = model.backbone.llm.get_base_model().model.layers[0].mlp  # inside the checkpointed layer
    vision_block = model.seg3d_head.up[0] if task == "seg3d" else model.seg2d_head.decoder.blocks[0]

    def counted(forward):  # forward hooks do not fire in checkpoint recomputation; the forward itself does
        def run(*args, **kwargs):
            calls.append(type(forward.__self__).__name__)
            return forward(*args, **kwargs)
        return run

    for module in (llm_mlp, vision_block):
        module.forward = counted(module.forward)

    plain, plain_grads = step()
    assert len(calls) == 2  # each block ran once
    assert not model.is_activation_checkpointing
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    assert model.backbone.llm.get_base_model().model.layers[0].gradient_checkpointing
    assert model.seg3d_head.gradient_checkpointing and model.backbone.encoder_3d.gradient_checkpointing
    calls.clear()
    checkpointed, checkpointed_grads = step()
    assert len(calls) == 4  # each block ran again in the backward pass: its activations were not stored
    model.activation_checkpointing_disable()
    assert not model.is_activation_checkpointing and not model.seg2d_head.decoder.gradient_checkpointing

    torch.testing.assert_close(checkpointed.loss, plain.loss, rtol=1e-5, atol=1e-6)
    assert checkpointed_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # a transformers ModelOutput: key and tuple access, None parts left out
    assert checkpointed["loss"] is checkpointed.loss and "box_loss" not in checkpointed.keys()
    assert checkpointed.to_tuple()[0] is checkpointed.loss


def test_segmentation_binds_to_the_referred_image(trainable, cxr_dicom):
    """Two 2D images, only the second (<img1>, the real radiograph) holds the target: the mask is predicted on it."""
    model, tokenizer = trainable
    xray = MedVersa(model, tokenizer).prepare_image(cxr_dicom).pixel_values
    images = torch.stack([torch.zeros_like(xray), xray])
    target = (xray[None, :1] > 0).float()
    question = "Compare <img0> with <img1>. " + instruction(Task.SEGMENTATION, target="lung", image="<img1>")
    batch = _batch(model, tokenizer, question, f"The segmentation mask of lung is {SEG2D_TOKEN}.", images,
                   masks_2d=target, seg2d_image_index=torch.tensor([1]))
    model.eval()
    with torch.no_grad():
        out = model(batch)
        hidden = model.backbone(batch).last_hidden_state
        states, _ = model.task_states(hidden, batch.input_ids, SEG2D_TOKEN)
        on_second = model.seg2d_head(images, states, torch.tensor([1]))
        on_first = model.seg2d_head(images, states, torch.tensor([0]))
    torch.testing.assert_close(out.mask_logits_2d, on_second)
    assert not torch.allclose(on_first, on_second)
    torch.testing.assert_close(out.seg2d_loss, model.seg_loss(on_second, target))

    batch.seg2d_image_index = None  # two 2D images and no reference: refused, not silently the first
    with pytest.raises(ValueError, match=r"prompt with 2 2D images needs the <img\{i\}> it refers to"):
        model(batch)
    batch.seg2d_image_index = torch.tensor([2])
    with pytest.raises(ValueError, match=r"refers to <img2> but its prompt holds 2 image"):
        model(batch)


def test_segmentation_refuses_a_reference_to_the_other_kind(trainable, cxr_dicom, nifti_ct):
    model, tokenizer = trainable
    mv = MedVersa(model, tokenizer)
    xray, ct = mv.prepare_image(cxr_dicom).pixel_values[None], mv.prepare_image(nifti_ct).pixel_values[None]
    question = "Given <img0> and <img1>, " + instruction(Task.SEGMENTATION, target="liver", image="<img1>")
    batch = _batch(model, tokenizer, question, f"The segmentation mask of liver is {SEG3D_TOKEN}.", xray, ct,
                   seg3d_image_index=torch.tensor([0]))
    batch.image_is_3d = torch.tensor([False, True])
    with pytest.raises(ValueError, match=r"3D segmentation token refers to <img0>, which is not a 3D image"):
        model(batch)
    batch.seg3d_image_index = torch.tensor([1])
    with torch.no_grad():
        assert model(batch).mask_logits_3d.shape == (1, 1, 16, 48, 48)
