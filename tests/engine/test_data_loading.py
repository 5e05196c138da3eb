"""load_example on the real files: masks follow their image through resize, flips and 3D reorientation; crops."""

import os
import random
import subprocess
import sys
from dataclasses import replace

import nibabel
import numpy as np
import pytest
import torch
from PIL import Image

from engine.configuration import MedVersaConfig
from engine.data.loading import example_rng, load_example, random_crop
from engine.data.schema import BoxTarget, ImageRef, MaskTarget, Sample
from engine.processing import Task, instruction, load_rgb, load_volume, prepare_volume, preprocess_2d

TINY = MedVersaConfig.tiny()
S = TINY.swin.image_size
LIVER = 5  # TotalSegmentator label of example_seg.nii.gz with the most voxels among the organs used here


@pytest.fixture(scope="module")
def derm_paths(shared_data):
    return shared_data / "derm" / "images" / "ISIC_0027001.jpg", shared_data / "derm" / "masks" / "ISIC_0027001.png"


def _extent(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Normalized xyxy extent of a (H, W) bool mask (pixel edges)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h)


def _lesion_sample(derm_paths, task="detection"):
    image, mask = derm_paths
    box = _extent(np.asarray(Image.open(mask)) > 0)
    return Sample("derm-1", "ham10000", task, "dermoscopy", (ImageRef(str(image), "dermoscopy"),),
                  instruction(Task.DETECTION, target="lesion"), "lesion <DET>. The segmentation mask is <2DSEG>.",
                  boxes=(BoxTarget("lesion", box),), masks=(MaskTarget(str(mask), "lesion"),))


def _flipped_and_not(sample, seeds=range(12)):
    examples = {seed: load_example(sample, TINY, random.Random(seed), augment=True, flip_detection=True)
                for seed in seeds}
    plain = load_example(sample, TINY)
    return plain, examples


def test_2d_mask_and_box_flip_with_the_image(derm_paths):
    sample = _lesion_sample(derm_paths)
    plain, examples = _flipped_and_not(sample)
    resized = plain.masks_2d[0, 0].numpy()
    assert plain.masks_2d.shape == (1, 1, S, S) and set(np.unique(resized)) == {0.0, 1.0}
    original = np.asarray(Image.open(derm_paths[1])) > 0
    assert abs(resized.mean() - original.mean()) < 0.02
    assert torch.equal(plain.pixel_values_2d[0], preprocess_2d(load_rgb(derm_paths[0]), TINY))
    x0, y0, x1, y1 = sample.boxes[0].xyxy
    flips = 0
    for example in examples.values():
        if torch.equal(example.pixel_values_2d, plain.pixel_values_2d):
            assert torch.equal(example.masks_2d, plain.masks_2d) and torch.equal(example.boxes, plain.boxes)
            continue
        flips += 1
        assert torch.equal(example.pixel_values_2d, plain.pixel_values_2d.flip(-1))
        assert np.array_equal(example.masks_2d[0, 0].numpy(), np.fliplr(resized))
        assert torch.allclose(example.boxes[0], torch.tensor([1 - x1, y0, 1 - x0, y1]))
        # the flipped box is still the flipped mask's extent, to one model pixel
        assert np.allclose(_extent(example.masks_2d[0, 0].numpy() > 0), example.boxes[0].numpy(), atol=1.0 / S)
    assert 0 < flips < len(examples)
    again = load_example(sample, TINY, random.Random(3), augment=True, flip_detection=True)
    assert torch.equal(again.pixel_values_2d, examples[3].pixel_values_2d) and torch.equal(again.boxes, examples[3].boxes)
    for seed in range(12):  # by default detection is not flipped (the paper flips for segmentation only)
        unflipped = load_example(sample, TINY, random.Random(seed), augment=True)
        assert torch.equal(unflipped.pixel_values_2d, plain.pixel_values_2d) and torch.equal(unflipped.boxes, plain.boxes)


def test_crop_for_text_tasks_keeps_values_in_range(shared_data):
    images = (ImageRef(str(shared_data / "dicom" / "cxr" / "nih_siim_cr_jpegbaseline.dcm"), "chest_xray"),
              ImageRef(str(shared_data / "cxr_png" / "00000001_000.png"), "chest_xray", role="prior"))
    sample = Sample("cxr-1", "mimic-cxr", "longitudinal", "chest_xray", images,
                    instruction(Task.LONGITUDINAL, reference="<img1>"), "No change.")
    plain = load_example(sample, TINY)
    assert plain.pixel_values_2d.shape == (2, 3, S, S) and plain.pixel_values_3d is None
    assert plain.image_is_3d.tolist() == [False, False] and plain.boxes is None and plain.masks_2d is None
    assert plain.prompt.count("<ImageHere>") == 2 * TINY.num_visual_tokens and plain.answer == "No change."
    mean, std = torch.tensor(TINY.image_mean)[:, None, None], torch.tensor(TINY.image_std)[:, None, None]
    low, high = -mean / std - 1e-5, (1 - mean) / std + 1e-5
    crops = [load_example(sample, TINY, random.Random(seed), augment=True).pixel_values_2d for seed in range(4)]
    for crop in crops:
        assert crop.shape == (2, 3, S, S) and ((crop >= low) & (crop <= high)).all()
        assert not torch.equal(crop[0], plain.pixel_values_2d[0]) and not torch.equal(crop[1], plain.pixel_values_2d[1])
    assert not torch.equal(crops[0], crops[1])
    rgb = load_rgb(images[1].path)
    rng = random.Random(0)
    shapes = [random_crop(rgb, rng).shape for _ in range(200)]
    fractions = [h * w / rgb[..., 0].size for h, w, _ in shapes]
    assert 0.5 * 0.99 <= min(fractions) < 0.6 and 0.9 < max(fractions) <= 1.0
    assert all(3 / 4 * 0.99 <= w / h <= 4 / 3 * 1.01 for h, w, _ in shapes)


def test_region_caption_is_neither_cropped_nor_flipped(derm_paths):
    sample = replace(_lesion_sample(derm_paths), task="region_caption", answer="A pigmented lesion.", boxes=(),
                     masks=(), instruction=instruction(Task.REGION_CAPTION, region="[0.1, 0.1, 0.5, 0.5]"))
    plain = load_example(sample, TINY)
    for seed in range(6):
        assert torch.equal(load_example(sample, TINY, random.Random(seed), augment=True).pixel_values_2d,
                           plain.pixel_values_2d)


def test_3d_flip_keeps_the_mask_on_the_organ(shared_data):
    ct, seg = shared_data / "nifti" / "example_ct_sm.nii.gz", shared_data / "nifti" / "example_seg.nii.gz"
    sample = Sample("ct-1", "totalsegmentator", "segmentation", "ct", (ImageRef(str(ct), "ct"),),
                    instruction(Task.SEGMENTATION, target="liver"), "The segmentation mask of liver is <3DSEG>.",
                    masks=(MaskTarget(str(seg), "liver", value=LIVER),))
    plain, examples = _flipped_and_not(sample, range(10))
    grid = (1, 1, *TINY.unet3d.volume_size)
    assert plain.pixel_values_3d.shape == grid and plain.masks_3d.shape == grid and plain.pixel_values_2d is None
    assert plain.image_is_3d.tolist() == [True] and set(plain.masks_3d.unique().tolist()) == {0.0, 1.0}
    # aligned: mean HU under the mask on the model grid ~ mean HU under the label in the file
    hu = np.asarray(nibabel.load(ct).dataobj, dtype=np.float32)
    label = np.asarray(nibabel.load(seg).dataobj) == LIVER
    hu_grid = prepare_volume(load_volume(ct), TINY.unet3d).spatial.as_tensor()[0]
    on_grid = hu_grid[plain.masks_3d[0, 0] > 0].mean().item()
    assert abs(on_grid - hu[label].mean()) < 10.0, (on_grid, hu[label].mean())
    values = plain.pixel_values_3d[0, 0]
    under = values[plain.masks_3d[0, 0] > 0].mean()
    axes = set()
    for example in examples.values():
        v, m = example.pixel_values_3d[0, 0], example.masks_3d[0, 0]
        assert torch.isclose(v[m > 0].mean(), under, atol=1e-5)
        flipped = [a for a in range(3) if torch.equal(v, values.flip(a)) and torch.equal(m, plain.masks_3d[0, 0].flip(a))]
        assert flipped or (torch.equal(v, values) and torch.equal(m, plain.masks_3d[0, 0]))
        axes.update(flipped)
    assert len(axes) >= 2
    # value=None: every labelled organ is foreground
    every = load_example(replace(sample, masks=(MaskTarget(str(seg), "organs"),)), TINY).masks_3d
    assert every.sum() > plain.masks_3d.sum()


def test_samples_naming_a_side_are_never_flipped_left_right(derm_paths, shared_data):
    lateral = replace(_lesion_sample(derm_paths), instruction=instruction(Task.DETECTION, target="left lesion"),
                      answer="left lesion <DET>. The segmentation mask is <2DSEG>.")
    plain, examples = _flipped_and_not(lateral)
    assert all(torch.equal(e.pixel_values_2d, plain.pixel_values_2d) and torch.equal(e.masks_2d, plain.masks_2d)
               and torch.equal(e.boxes, plain.boxes) for e in examples.values())
    ct, seg = shared_data / "nifti" / "example_ct_sm.nii.gz", shared_data / "nifti" / "example_seg.nii.gz"
    kidney = Sample("ct-2", "totalsegmentator", "segmentation", "ct", (ImageRef(str(ct), "ct"),),
                    instruction(Task.SEGMENTATION, target="right kidney"),
                    "The segmentation mask of right kidney is <3DSEG>.", masks=(MaskTarget(str(seg), "right kidney", value=2),))
    plain, examples = _flipped_and_not(kidney, range(10))
    values, axes = plain.pixel_values_3d[0, 0], set()
    for example in examples.values():
        v = example.pixel_values_3d[0, 0]
        axes.update(a for a in range(3) if not torch.equal(v, values) and torch.equal(v, values.flip(a)))
    assert axes and 2 not in axes  # D or H flips happen, never the right-left W axis


def test_bad_inputs(derm_paths, tmp_path):
    sample = _lesion_sample(derm_paths)
    with pytest.raises(ValueError, match="needs a seeded random.Random"):
        load_example(sample, TINY, None, augment=True)
    two = replace(sample, images=sample.images * 2, instruction="Detect lesion in <img1> and <img0>.",
                  masks=(replace(sample.masks[0], image_index=1),))
    with pytest.raises(ValueError, match="belongs to <img1> but its segmentation token refers to <img0>"):
        load_example(two, TINY)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(small)
    with pytest.raises(ValueError, match=r"has shape \[10, 12\] but its image has \[450, 600\]"):
        load_example(replace(sample, masks=(MaskTarget(str(small), "lesion"),)), TINY)
    with pytest.raises(FileNotFoundError):
        load_example(replace(sample, images=(ImageRef(str(tmp_path / "none.jpg"), "dermoscopy"),)), TINY)


def test_mask_of_the_referred_second_image_reaches_the_batch(derm_paths, shared_data, tiny_checkpoint):
    from transformers import AutoTokenizer

    from engine.data.collate import collate

    other = ImageRef(str(shared_data / "derm" / "images" / "ISIC_0027287.jpg"), "dermoscopy")
    sample = replace(_lesion_sample(derm_paths), task="segmentation", boxes=(),
                     images=(other, _lesion_sample(derm_paths).images[0]),
                     instruction="<img0> is another lesion. Segment the lesion in <img1>.",
                     answer="The segmentation mask of lesion is <2DSEG>.",
                     masks=(replace(_lesion_sample(derm_paths).masks[0], image_index=1),))
    example = load_example(sample, TINY)
    assert example.mask_image_index.tolist() == [1] and example.pixel_values_2d.shape == (2, 3, S, S)
    config = MedVersaConfig.load(tiny_checkpoint)
    batch = collate([example, load_example(_lesion_sample(derm_paths), TINY)],
                    AutoTokenizer.from_pretrained(tiny_checkpoint), config)
    assert batch.seg2d_image_index.tolist() == [1, 0] and batch.seg3d_image_index is None
    assert batch.masks_2d.shape == (2, 1, S, S)


def test_example_rng_depends_only_on_seed_step_and_slot():
    draws = [example_rng(0, 5, 1).random() for _ in range(2)]
    assert draws[0] == draws[1]
    others = {example_rng(*key).random() for key in [(0, 5, 1), (1, 5, 1), (0, 6, 1), (0, 5, 2)]}
    assert len(others) == 4
    # the same in another interpreter with another hash seed
    code = "import random; print(repr(random.Random('medversa-augment:3:7:2').random()))"
    other = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": "123"},
                           capture_output=True, text=True, check=True, timeout=60)
    assert float(other.stdout) == example_rng(3, 7, 2).random()


def test_wording_and_detection_classes_are_drawn_anew_each_iteration(derm_paths, tmp_path):
    """Paper 4.3: a Table 5 instruction per sample per iteration; detection names up to nine classes drawn at random,
    <DET> with the box for the present one, <N/A> for absent ones; the draws are a function of (seed, step, slot)."""
    from engine.data.loading import draw_wording
    from engine.data.manifest import read_manifest, write_manifest

    absent = tuple(f"class {i}" for i in range(12))
    sample = replace(_lesion_sample(derm_paths), answer="lesion <DET>.", masks=(), instruction_fields={"image": "<img0>"},
                     absent_classes=absent)
    sample = read_manifest(write_manifest([sample], tmp_path / "m.jsonl"),  # the fields survive the manifest
                           allowed_roots=[os.path.dirname(sample.images[0].path)])[0]
    assert sample.absent_classes == absent and sample.instruction_fields == {"image": "<img0>"}
    drawn = [draw_wording(sample, example_rng(0, step, 0)) for step in range(60)]
    assert len({d.instruction for d in drawn}) > 10
    counts = set()
    for d in drawn:
        names = [part.rsplit(" ", 1)[0] for part in d.answer.split(". ")]
        counts.add(len(names))
        assert 1 <= len(names) <= 9 and len(set(names)) == len(names)
        assert d.instruction.count(", ") == len(names) - 1 and all(n in d.instruction for n in names)
        has_lesion = "lesion" in names
        assert d.answer.count("<DET>") == len(d.boxes) == int(has_lesion)
        assert d.answer.count("<N/A>") == len(names) - int(has_lesion)
        assert all(f"{n} <N/A>." in d.answer for n in names if n != "lesion")
    assert len(counts) > 4 and any("lesion <DET>." in d.answer for d in drawn)
    assert draw_wording(sample, example_rng(0, 7, 0)) == drawn[7]  # a resumed run draws the same
    loaded = [load_example(sample, TINY, example_rng(0, step, 0), augment=False) for step in range(3)]
    assert [e.prompt for e in loaded] != [loaded[0].prompt] * 3
    fixed = replace(sample, instruction_fields=None, absent_classes=())
    assert load_example(fixed, TINY, example_rng(0, 5, 0)).prompt.endswith(f"{fixed.instruction}###Assistant:")


def test_bad_wording_fields_are_refused(derm_paths):
    from engine.data.manifest import validate_sample

    sample = _lesion_sample(derm_paths, task="segmentation")
    with pytest.raises(ValueError, match=r"instruction_fields .*needs the field\(s\) \['target'\]"):
        validate_sample(replace(sample, answer="x", masks=(), instruction_fields={"image": "<img0>"}))
    with pytest.raises(ValueError, match="absent_classes are for detection samples"):
        validate_sample(replace(sample, answer="x", masks=(), absent_classes=("heart",)))
    with pytest.raises(ValueError, match=r"absent_classes \['lesion'\] also have boxes"):
        validate_sample(replace(_lesion_sample(derm_paths), absent_classes=("lesion",)))
    detection = replace(_lesion_sample(derm_paths), answer="lesion <DET>.", masks=())
    with pytest.raises(ValueError, match="refers to <img1> but only 1 image"):
        validate_sample(replace(detection, instruction_fields={"image": "<img1>"}))
    with pytest.raises(ValueError, match="a detection sample whose classes are re-drawn has no masks"):
        validate_sample(replace(_lesion_sample(derm_paths), instruction_fields={"image": "<img0>"}))
