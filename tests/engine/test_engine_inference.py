import nibabel as nib
import numpy as np
import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from engine.configuration import DET_TOKEN, NA_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.inference import TASK_TOKENS, MedVersa, Request
from engine.modeling import MedVersaInputs
from engine.processing import Task, build_prompt, encode_prompt, instruction, pad_sequences


def _generate(mv, force, images, question, answer, **kwargs):
    processor = LogitsProcessorList([force(mv.tokenizer, answer)])
    return mv.generate(images, question, logits_processor=processor, max_new_tokens=40, **kwargs)


def test_two_det_tokens_give_two_boxes_read_at_their_positions(medversa, force, cxr_dicom):
    """Released defects 3, 5 and 7: positions from the generated ids, several boxes, pixel coordinates."""
    question = instruction(Task.DETECTION, target="heart, left lung, nodule")
    result = _generate(medversa, force, [cxr_dicom], question,
                       f"heart {DET_TOKEN}. left lung {DET_TOKEN}. nodule <N/A>.###")
    assert result.text == "heart: seen. left lung: seen. nodule: not seen."  # presence and absence kept
    assert [b.label for b in result.boxes] == ["heart", "left lung"]
    for box in result.boxes:
        x0, y0, x1, y1 = box.xyxy
        assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1
        assert box.xyxy_pixels == pytest.approx((x0 * 1024, y0 * 1024, x1 * 1024, y1 * 1024))
    # the same sequence through the training forward gives the same boxes at the <DET> positions
    image = medversa.prepare_image(cxr_dicom)
    prompt = encode_prompt(medversa.tokenizer, build_prompt(question, 1, medversa.config))
    ids, mask = pad_sequences([prompt + result.token_ids], medversa.tokenizer.pad_token_id)
    with torch.no_grad():
        raw = medversa.model(MedVersaInputs(ids, mask, pixel_values_2d=image.pixel_values[None])).boxes
    expected = torch.stack([raw[:, [0, 2]].min(1).values, raw[:, [1, 3]].min(1).values,
                            raw[:, [0, 2]].max(1).values, raw[:, [1, 3]].max(1).values], dim=1).clamp(0, 1)
    torch.testing.assert_close(torch.tensor([b.xyxy for b in result.boxes]), expected, atol=1e-5, rtol=1e-4)


def test_returned_boxes_are_clamped_to_the_image(tiny_checkpoint, force, cxr_dicom):
    """Raw head outputs (no activation, as in the released weights) may leave [0, 1]; returned boxes may not."""
    mv = MedVersa.from_checkpoint(tiny_checkpoint)
    last = mv.model.detection_head.mlp[4]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.2, -0.3, 0.4, 0.6]))
    result = _generate(mv, force, [cxr_dicom], instruction(Task.DETECTION, target="heart"), f"heart {DET_TOKEN}.###")
    assert result.boxes[0].xyxy == pytest.approx((0.4, 0.0, 1.0, 0.6))
    assert result.boxes[0].xyxy_pixels == pytest.approx((0.4 * 1024, 0.0, 1024.0, 0.6 * 1024))


def test_2dseg_mask_on_the_original_grid(medversa, force, shared_data):
    image = shared_data / "derm" / "images" / "ISIC_0024311.jpg"
    result = _generate(medversa, force, [image], instruction(Task.SEGMENTATION, target="lesion"),
                       f"The segmentation mask of lesion is {SEG2D_TOKEN}.###", keep_task_tokens=True)
    assert result.text == f"The segmentation mask of lesion is {SEG2D_TOKEN}."
    (mask,) = result.masks_2d
    assert mask.label == "lesion"
    assert mask.mask.shape == (450, 600) and mask.mask.dtype == bool
    np.testing.assert_array_equal(mask.mask, mask.probability > 0.5)


def test_3dseg_volume_on_the_nifti_grid(medversa, force, nifti_ct, tmp_path):
    result = _generate(medversa, force, [nifti_ct], instruction(Task.SEGMENTATION, target="liver"),
                       f"The segmentation mask of liver is {SEG3D_TOKEN}. spleen {SEG3D_TOKEN}.###",
                       constrain_task_tokens=False)  # two masks in one answer (released defect 5)
    assert [m.label for m in result.masks_3d] == ["liver", "spleen"]
    source = nib.load(nifti_ct)
    for mask in result.masks_3d:
        assert mask.mask.shape == source.shape
    saved = nib.load(result.masks_3d[0].save_nifti(tmp_path / "liver.nii.gz"))
    np.testing.assert_allclose(saved.affine, source.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(saved.dataobj), result.masks_3d[0].mask)


def test_generation_stops_on_the_exact_stop_ids(tiny_checkpoint, force):
    """Released defect 1: stop ids compared after a bf16 cast stopped on neighbouring ids."""
    mv = MedVersa.from_checkpoint(tiny_checkpoint)
    stop, neighbour = mv.config.token_ids[SEG2D_TOKEN], mv.config.token_ids[DET_TOKEN]
    bf16 = torch.tensor([stop, neighbour]).to(torch.bfloat16)
    assert bf16[0] == bf16[1]  # the two ids are indistinguishable in bf16
    mv.config.stop_strings = (SEG2D_TOKEN,)
    image = np.zeros((8, 8, 3), np.uint8)
    from PIL import Image

    path = tiny_checkpoint.parent / "black.png"
    Image.fromarray(image).save(path)
    result = _generate(mv, force, [path], "Report <img0>.", f"a {DET_TOKEN} b {SEG2D_TOKEN} c d e")
    assert result.token_ids[-1] == stop
    assert neighbour in result.token_ids
    assert result.raw_text.replace(" ", "") == f"a{DET_TOKEN}b{SEG2D_TOKEN}"
    assert len(result.boxes) == 1 and len(result.masks_2d) == 1 and result.masks_2d[0].mask.shape == (8, 8)


def test_task_token_without_matching_image_warns(medversa, force, cxr_dicom):
    with pytest.warns(UserWarning, match="<3DSEG> generated for a prompt without a matching image"):
        result = _generate(medversa, force, [cxr_dicom], "Report <img0>.", f"liver {SEG3D_TOKEN}.###",
                           constrain_task_tokens=False)
    assert result.masks_3d == [] and result.text == "liver."


class PreferTaskTokens(LogitsProcessor):
    """Adds a large bonus to every task token: an untrained model that would emit them at every step."""

    def __init__(self, ids):
        self.ids = list(ids)

    def __call__(self, input_ids, scores):
        scores[:, self.ids] += 1000.0
        return scores


def test_generated_task_tokens_are_those_the_task_asks(medversa, cxr_dicom, nifti_ct):
    ids = {t: medversa.config.token_ids[t] for t in TASK_TOKENS}
    prefer = LogitsProcessorList([PreferTaskTokens(ids.values())])

    def tokens(images, question):
        out = medversa.generate(images, question, logits_processor=prefer, max_new_tokens=6, keep_task_tokens=True)
        return [next(t for t, i in ids.items() if i == token) for token in out.token_ids if token in ids.values()]

    assert tokens([cxr_dicom], instruction(Task.SEGMENTATION, target="heart")) == [SEG2D_TOKEN]  # one, of 2D kind
    assert tokens([nifti_ct], instruction(Task.SEGMENTATION, target="liver")) == [SEG3D_TOKEN]
    assert tokens([cxr_dicom], instruction(Task.CLASSIFICATION)) == []
    assert tokens([cxr_dicom], instruction(Task.LONGITUDINAL, image="<img0>", reference="<img0>")) == []
    # a report may ground its sentences (the drafts' findings), with the heads of its images' kind only
    assert SEG3D_TOKEN not in tokens([cxr_dicom], instruction(Task.REPORT))
    assert set(tokens([nifti_ct], instruction(Task.FINDINGS))) <= {SEG3D_TOKEN}
    assert set(tokens([cxr_dicom], instruction(Task.DETECTION, target="heart"))) <= {DET_TOKEN, NA_TOKEN}
    assert SEG3D_TOKEN not in tokens([cxr_dicom], "What is shown in <img0>?")  # a free question: the image's kinds
    unconstrained = medversa.generate([cxr_dicom], instruction(Task.CLASSIFICATION), logits_processor=prefer,
                                      max_new_tokens=3, keep_task_tokens=True, constrain_task_tokens=False)
    assert all(token in ids.values() for token in unconstrained.token_ids)


def test_no_special_token_reaches_the_text(medversa, force, cxr_dicom):
    tokenizer = medversa.tokenizer
    result = _generate(medversa, force, [cxr_dicom], instruction(Task.REPORT),
                       f"FINDINGS: clear.{tokenizer.bos_token}{tokenizer.pad_token} IMPRESSION: normal.{tokenizer.eos_token}")
    assert result.token_ids[-1] == tokenizer.eos_token_id and tokenizer.eos_token in result.raw_text
    assert result.text == "FINDINGS: clear. IMPRESSION: normal."


def test_batch_equals_single_requests(medversa, force, cxr_dicom, shared_data):
    png = shared_data / "cxr_png" / "00000001_000.png"
    answer = f"heart {DET_TOKEN}.###"
    requests = [Request([cxr_dicom], "Detect heart in <img0>."),
                Request([png, cxr_dicom], "Compare <img0> with <img1>.", context="Age:60.Gender:F.")]
    processor = LogitsProcessorList([force(medversa.tokenizer, answer)])
    batch = medversa.generate_batch(requests, logits_processor=processor, max_new_tokens=10)
    for request, result in zip(requests, batch):
        single = medversa.generate(request.images, request.prompt, request.context,
                                   logits_processor=processor, max_new_tokens=10)
        assert result.token_ids == single.token_ids
        np.testing.assert_allclose(result.boxes[0].xyxy, single.boxes[0].xyxy, atol=1e-4)
    # "... with <img1>.": the box belongs to the nearest image referred to, the 1024-px radiograph (not the 512-px PNG)
    assert batch[1].boxes[0].image_index == 1
    assert batch[1].boxes[0].xyxy_pixels[2] == pytest.approx(batch[1].boxes[0].xyxy[2] * 1024)


def test_bad_inputs_raise_named_errors(medversa, cxr_dicom, shared_data):
    with pytest.raises(ValueError, match="refers to <img1>"):
        medversa.generate([cxr_dicom], "Compare <img0> with <img1>.")
    with pytest.raises(ValueError, match="unsupported"):
        medversa.generate([shared_data / "SOURCES.md"], "Report <img0>.")
    with pytest.raises(FileNotFoundError, match="image not found"):
        medversa.generate([shared_data / "missing.dcm"], "Report <img0>.")


def test_3d_mask_of_a_dicom_series_saved_as_dicom_seg(shared_data, tmp_path):
    import pydicom

    from engine.inference import Mask3D
    from engine.processing import load_volume

    folder = shared_data / "dicom" / "ct_series"
    volume = load_volume(folder)
    # a mask we can check independently: bone-like voxels (> 300 HU) on the volume grid as read
    mask = Mask3D("bone", (volume[0].numpy() > 300).astype(np.uint8), volume.affine.numpy(), 0)
    sources = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    with pytest.raises(ValueError, match=r"lacks SOPClassUID \(0008,0016\)"):
        mask.save_dicom_seg(tmp_path / "refused.dcm", sources)  # these anonymised files carry empty UIDs
    study_uid, series_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for ds in sources:  # in-memory variants with the UIDs a real archive would hold
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    import highdicom as hd

    seg = hd.seg.segread(mask.save_dicom_seg(tmp_path / "seg.dcm", sources))
    assert seg.Modality == "SEG" and seg.NumberOfFrames == len(sources)
    for ds in sources[::6]:
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        frame = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], segment_numbers=[1])[0, :, :, 0]
        np.testing.assert_array_equal(frame.astype(bool), hu > 300)


def test_bf16_language_model_with_fp32_heads(tiny_checkpoint, force, cxr_dicom):
    mv = MedVersa.from_checkpoint(tiny_checkpoint, dtype=torch.bfloat16)
    assert mv.model.backbone.llm.get_input_embeddings().weight.dtype == torch.bfloat16
    result = _generate(mv, force, [cxr_dicom], "Segment heart in <img0>.",
                       f"heart {DET_TOKEN}. The segmentation mask of heart is {SEG2D_TOKEN}.###",
                       constrain_task_tokens=False)
    assert len(result.boxes) == 1 and result.masks_2d[0].mask.shape == (1024, 1024)


def test_one_instance_serves_concurrent_requests(medversa, force, cxr_dicom, shared_data):
    """Released defect 8 (second half): global state made the demo unsafe for several users."""
    from concurrent.futures import ThreadPoolExecutor

    png = shared_data / "cxr_png" / "00000001_000.png"
    jobs = [([cxr_dicom], f"heart {DET_TOKEN}.###"), ([png], f"lung {DET_TOKEN}. rib {DET_TOKEN}.###")] * 2
    sequential = [_generate(medversa, force, images, "Detect <img0>.", answer) for images, answer in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda job: _generate(medversa, force, job[0], "Detect <img0>.", job[1]), jobs))
    for a, b in zip(sequential, parallel):
        assert a.token_ids == b.token_ids and [x.label for x in a.boxes] == [x.label for x in b.boxes]
        np.testing.assert_allclose([x.xyxy_pixels for x in a.boxes], [x.xyxy_pixels for x in b.boxes], atol=1e-3)


def test_masks_and_boxes_bind_to_the_referred_image(medversa, force, cxr_dicom, shared_data):
    """<img0> is a 450 x 600 dermoscopy image, <img1> the 1024 x 1024 radiograph that holds the target."""
    derm = shared_data / "derm" / "images" / "ISIC_0024311.jpg"
    question = "Compare <img0> with <img1>. " + instruction(Task.SEGMENTATION, target="lung", image="<img1>")
    result = _generate(medversa, force, [derm, cxr_dicom], question,
                       f"The segmentation mask of lung is {SEG2D_TOKEN}.###")
    (mask,) = result.masks_2d
    assert mask.image_index == 1 and mask.mask.shape == (1024, 1024)
    # the probability map is the head's output on <img1>
    prepared = [medversa.prepare_image(p) for p in (derm, cxr_dicom)]
    images = torch.stack([p.pixel_values for p in prepared])
    ids = encode_prompt(medversa.tokenizer, build_prompt(question, 2, medversa.config)) + result.token_ids
    input_ids, attention = pad_sequences([ids], medversa.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = medversa.model(MedVersaInputs(input_ids, attention, pixel_values_2d=images,
                                               seg2d_image_index=torch.tensor([1]))).mask_logits_2d
    expected = torch.sigmoid(torch.nn.functional.interpolate(logits, size=(1024, 1024), mode="bilinear"))[0, 0]
    np.testing.assert_allclose(mask.probability, expected.numpy(), atol=1e-5)

    question = "Compare <img0> with <img1>. " + instruction(Task.DETECTION, target="heart", image="<img1>")
    (box,) = _generate(medversa, force, [derm, cxr_dicom], question, f"heart {DET_TOKEN}.###").boxes
    x0, y0, x1, y1 = box.xyxy
    assert box.image_index == 1 and box.xyxy_pixels == pytest.approx((x0 * 1024, y0 * 1024, x1 * 1024, y1 * 1024))
