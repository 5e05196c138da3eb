import random

import nibabel as nib
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from engine.configuration import IMAGE_TOKEN, MedVersaConfig
from engine.processing import (
    Modality,
    TEMPLATES,
    Task,
    build_prompt,
    check_tokenizer,
    clean_answer,
    detect_modality,
    encode_example,
    encode_prompt,
    format_context,
    instruction,
    load_rgb,
    load_volume,
    prepare_volume,
    preprocess_2d,
    referred_images,
    restore_volume,
)

TINY = MedVersaConfig.tiny()


@pytest.mark.parametrize(
    "task, count",
    [(Task.FINDINGS, 12), (Task.IMPRESSION, 9), (Task.REPORT, 12), (Task.CLASSIFICATION, 9),
     (Task.REGION_CAPTION, 10), (Task.LONGITUDINAL, 7), (Task.DETECTION, 14), (Task.SEGMENTATION, 17)],
)
def test_table5_template_counts(task, count):
    assert len(TEMPLATES[task]) == count


def test_instruction_fixed_random_and_missing_field():
    assert instruction(Task.DETECTION, target="pneumothorax") == "Detect any signs of pneumothorax in <img0>."
    assert (instruction("longitudinal", image="<img0><img1>", reference="<img2><img3>", index=2)
            == "Compare the current study <img0><img1> with the past one <img2><img3>.")
    drawn = {instruction(Task.FINDINGS, rng=random.Random(seed)) for seed in range(40)}
    assert len(drawn) > 5 and drawn <= {t.format(image="<img0>") for t in TEMPLATES[Task.FINDINGS]}
    with pytest.raises(ValueError, match="target"):
        instruction(Task.SEGMENTATION)
    with pytest.raises(ValueError, match="out of range"):
        instruction(Task.IMPRESSION, index=9)


def test_prompt_format_of_released_checkpoint():
    context = format_context(age="60", sex="F", indication="Chest pain.", comparison="None.")
    assert context == "Age:60.Gender:F.Chest pain.None."
    prompt = build_prompt("Please report <img0>.", 1, TINY, context)
    assert prompt == ("###Human: <img0>" + IMAGE_TOKEN * 9 + "</img0><context>Age:60.Gender:F.Chest pain.None."
                      "</context>Please report <img0>.###Assistant:")
    assert format_context() is None
    assert format_context(indication="Positive TB test", comparison="None.") == "Positive TB test.None."


@pytest.mark.parametrize(
    "question, n, message",
    [("Report <img0> and <img1>.", 1, "<img1> but only 1"), ("Report <img0>.", 2, "<img1> is given"),
     ("Report <img0>.", 0, "1 to 8 images"), (f"Report <img0>{IMAGE_TOKEN}.", 1, "reserved")],
)
def test_prompt_identifiers_must_match_images(question, n, message):
    with pytest.raises(ValueError, match=message):
        build_prompt(question, n, TINY)


def test_one_bos_in_training_and_inference(tiny_checkpoint):
    """Released defect 2: training saw two BOS tokens, inference one."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    prompt = build_prompt("Please report <img0>.", 1, TINY)
    inference_ids = encode_prompt(tokenizer, prompt)
    train_ids, labels = encode_example(tokenizer, prompt, "No acute disease.")
    bos = tokenizer.bos_token_id
    assert tokenizer.encode("No acute disease.")[0] == bos  # adds BOS itself, like Llama's tokenizer
    assert inference_ids.count(bos) == 1 and inference_ids[0] == bos
    assert train_ids.count(bos) == 1
    assert train_ids[: len(inference_ids)] == inference_ids
    assert labels[: len(inference_ids)] == [-100] * len(inference_ids)
    assert tokenizer.decode(labels[len(inference_ids):]) == " No acute disease.###"


def test_tokenizer_without_added_tokens_is_refused(tiny_checkpoint):
    config = MedVersaConfig.load(tiny_checkpoint)
    from engine.tiny import train_tokenizer

    with pytest.raises(ValueError, match="lacks the MedVersa added tokens"):
        check_tokenizer(train_tokenizer(["plain text"]), config)


def test_clean_answer_never_rewrites_wording():
    """Released defect 6: any answer containing "mel" became "melanoma"."""
    assert clean_answer(" melanocytic nevus###") == "melanocytic nevus"
    assert clean_answer("liver <3DSEG>.###", ("<3DSEG>",), keep_task_tokens=False) == "liver."
    assert clean_answer("heart <DET>. nodule <N/A>.###", ("<DET>", "<N/A>"), keep_task_tokens=False) == (
        "heart: seen. nodule: not seen.")


def test_real_chest_dicom_and_png_to_clip_normalised_tensor(cxr_dicom, shared_data):
    from studyapp.dicom.display import render_frame
    import pydicom

    rgb = load_rgb(cxr_dicom)
    assert rgb.shape == (1024, 1024, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 1], render_frame(pydicom.dcmread(cxr_dicom)))
    x = preprocess_2d(rgb, TINY)
    assert x.shape == (3, 32, 32)
    # a pure white image maps to (1 - mean) / std per channel
    white = preprocess_2d(np.full((10, 20, 3), 255, np.uint8), TINY)
    assert white[0, 0, 0].item() == pytest.approx((1 - 0.48145466) / 0.26862954, rel=1e-5)
    png = load_rgb(shared_data / "cxr_png" / "00000001_000.png")
    assert png.shape == (512, 512, 3)


def test_modality_detection(shared_data, cxr_dicom, nifti_ct):
    assert detect_modality(cxr_dicom) is Modality.CHEST_XRAY
    assert detect_modality(nifti_ct) is Modality.CT
    assert detect_modality(shared_data / "dicom" / "ct_series") is Modality.CT
    assert detect_modality(shared_data / "derm" / "images" / "ISIC_0024311.jpg") is Modality.DERMOSCOPY
    assert detect_modality(shared_data / "cxr_png" / "00000001_000.png") is Modality.CHEST_XRAY
    with pytest.raises(ValueError, match="Modality"):
        detect_modality(shared_data / "dicom" / "edge" / "rtdose.dcm")
    with pytest.raises(ValueError, match="unsupported image kind"):
        detect_modality(shared_data / "SOURCES.md")
    with pytest.raises(ValueError, match=r"unsupported DICOM Modality \(0008,0060\) 'MR'"):
        detect_modality(shared_data / "dicom" / "edge" / "MR_small.dcm")


def _variant(source, folder, **tags):
    """A copy of a DICOM file with some header attributes set (``None`` deletes one)."""
    import pydicom

    ds = pydicom.dcmread(source)
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = folder / f"variant{len(list(folder.iterdir()))}.dcm"
    ds.save_as(path)
    return path


def test_radiographs_must_show_a_human_chest(shared_data, cxr_dicom, tmp_path):
    cxr = shared_data / "dicom" / "cxr"
    assert detect_modality(cxr / "RG1_J2KI.dcm") is Modality.CHEST_XRAY  # CR, CHEST, PA
    # the veterinary radiograph of a dog's thorax (DX, Body Part Examined THORAX) is not read as a chest X-ray
    with pytest.raises(ValueError, match=r"Body Part Examined \(0018,0015\) is 'THORAX', not a human chest"):
        detect_modality(cxr / "highdicom_dx_image_dog.dcm")
    with pytest.raises(ValueError, match="'CSPINE', not a human chest"):
        detect_modality(cxr / "pydicom_cr_16x16_rescale.dcm")
    # no Body Part Examined: the View Position decides
    assert detect_modality(_variant(cxr_dicom, tmp_path, BodyPartExamined=None)) is Modality.CHEST_XRAY
    with pytest.raises(ValueError, match=r"unknown body part .*View Position \(0018,5101\) empty"):
        detect_modality(_variant(cxr_dicom, tmp_path, BodyPartExamined=None, ViewPosition=None))
    with pytest.raises(ValueError, match="not human \\(Patient Species 'Canis lupus familiaris'\\)"):
        detect_modality(_variant(cxr_dicom, tmp_path, PatientSpeciesDescription="Canis lupus familiaris"))
    assert detect_modality(_variant(cxr_dicom, tmp_path, PatientSpeciesDescription="Homo sapiens")) is \
        Modality.CHEST_XRAY


def test_volume_folders_give_clear_errors(shared_data, nifti_ct, tmp_path):
    holds_nifti = tmp_path / "nifti"
    holds_nifti.mkdir()
    (holds_nifti / nifti_ct.name).write_bytes(nifti_ct.read_bytes())
    for call in (detect_modality, load_volume):
        with pytest.raises(ValueError, match=r"holds NIfTI file\(s\) \['example_ct_sm.nii.gz'\]: give the NIfTI file"):
            call(holds_nifti)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    for call in (detect_modality, load_volume):
        with pytest.raises(ValueError, match="holds no DICOM file"):
            call(empty)
    mr = tmp_path / "mr"
    mr.mkdir()
    (mr / "1.dcm").write_bytes((shared_data / "dicom" / "edge" / "MR_small.dcm").read_bytes())
    with pytest.raises(ValueError, match="DICOM series of Modality \\(0008,0060\\) 'MR'; volumes must be CT"):
        detect_modality(mr)


def test_volume_reoriented_resampled_and_normalised(nifti_ct, tmp_path):
    """Released defect 8: CT used without reorientation or spacing."""
    volume = load_volume(nifti_ct)
    prepared = prepare_volume(volume, TINY.unet3d)
    assert prepared.pixel_values.shape == (1, 16, 48, 48)
    above = prepared.pixel_values[prepared.pixel_values > prepared.pixel_values.mean()]
    assert above.mean().item() == pytest.approx(0.0, abs=0.05)

    # the same CT stored with the first axis flipped (and the affine saying so) gives the same model input
    img = nib.load(nifti_ct)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = img.shape[0] - 1
    flipped = nib.Nifti1Image(np.asarray(img.dataobj)[::-1].copy(), img.affine @ flip)
    nib.save(flipped, tmp_path / "flipped.nii.gz")
    again = prepare_volume(load_volume(tmp_path / "flipped.nii.gz"), TINY.unet3d)
    torch.testing.assert_close(again.pixel_values, prepared.pixel_values, atol=1e-4, rtol=1e-4)

    restored = restore_volume(prepared.spatial.as_tensor()[:1], prepared)
    assert restored.shape == img.shape
    assert np.corrcoef(restored.ravel(), np.asarray(img.dataobj, dtype=np.float32).ravel())[0, 1] > 0.8
    with pytest.raises(ValueError, match="NIfTI file or a DICOM series folder"):
        load_volume(tmp_path / "flipped.png")


def test_clean_answer_drops_control_characters_but_keeps_layout():
    assert clean_answer("FINDINGS:\tclear\x00\x07 lungs.\nIMPRESSION: normal.###junk") == (
        "FINDINGS:\tclear lungs.\nIMPRESSION: normal."
    )


def _permutation_affine(order):
    """``P`` with ``old_index = P @ new_index`` for ``new = np.transpose(old, order)``."""
    matrix = np.zeros((4, 4))
    matrix[3, 3] = 1
    for new_axis, old_axis in enumerate(order):
        matrix[old_axis, new_axis] = 1
    return matrix


def _flip_affine(shape, axes):
    """``F`` with ``old_index = F @ new_index`` for ``new = np.flip(old, axes)``."""
    matrix = np.eye(4)
    for axis in axes:
        matrix[axis, axis], matrix[axis, 3] = -1, shape[axis] - 1
    return matrix


def test_mask_content_survives_flipped_and_permuted_storage(shared_data, tmp_path):
    """Released defect 8: one organ mask (TotalSegmentator label) stored flipped and/or with permuted axes, each
    with a consistent affine, lands on the same model grid and comes back onto each file's grid (Dice > 0.95)."""
    seg = nib.load(shared_data / "nifti" / "example_seg.nii.gz")
    labels = np.asarray(seg.dataobj)
    values, counts = np.unique(labels[labels > 0], return_counts=True)
    truth = (labels == values[np.argmax(counts)]).astype(np.float32)  # the largest organ, (122, 101, 30)
    order = (2, 0, 1)
    permuted = np.transpose(truth, order)
    variants = {
        "as stored": (truth, seg.affine),
        "y flipped": (np.flip(truth, 1), seg.affine @ _flip_affine(truth.shape, [1])),
        "axes permuted": (permuted, seg.affine @ _permutation_affine(order)),
        "permuted, 2 flips": (np.flip(permuted, (0, 2)),
                              seg.affine @ _permutation_affine(order) @ _flip_affine(permuted.shape, [0, 2])),
    }
    reference = None
    for name, (mask, affine) in variants.items():
        path = tmp_path / f"{name.replace(' ', '_').replace(',', '')}.nii.gz"
        nib.save(nib.Nifti1Image(np.ascontiguousarray(mask), affine), path)
        prepared = prepare_volume(load_volume(path), TINY.unet3d, clip_hu=False)
        grid = prepared.spatial.as_tensor()[0]  # (16, 48, 48), S-A-R
        if reference is None:
            reference = grid
        torch.testing.assert_close(grid, reference, rtol=0, atol=1e-5, msg=f"{name}: another model grid")
        restored = restore_volume((grid > 0.5).float()[None], prepared) > 0.5
        assert restored.shape == mask.shape, name
        dice = 2 * (restored & (mask > 0.5)).sum() / (restored.sum() + (mask > 0.5).sum())
        assert dice > 0.95, f"{name}: Dice {dice:.3f}"


def test_referred_images_nearest_reference_of_the_tokens_kind():
    question = "Compare <img0> with the prior <img1>, then segment the lung in <img1>."
    answer = " The segmentation mask of lung is <2DSEG>. In <img0>: heart <DET>. nodule <N/A>.###"
    prompt = "###Human: <img0><ImageHere><ImageHere></img0><img1><ImageHere><ImageHere></img1>" + question
    # image blocks are not references; the answer's own "<img0>" re-binds the <DET> after it
    assert referred_images(prompt + answer, [False, False]) == [("<2DSEG>", 1), ("<DET>", 0)]
    # a 3D token skips the nearer 2D reference; without any image of its kind it gets -1
    assert referred_images("CT <img0>, X-ray <img1>: liver <3DSEG>, lung <2DSEG>", [True, False]) == [
        ("<3DSEG>", 0), ("<2DSEG>", 1)]
    assert referred_images("Segment <img0>: liver <3DSEG>", [False]) == [("<3DSEG>", -1)]
