"""Chest ImaGenome (boxes), CheXmask (RLE masks) and Medical-Diff-VQA adapters on MIMIC-CXR-JPG-layout folders
built from the real NIH chest image; boxes and masks come from real dermoscopy lesion masks resized to the image."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.adapters.chest_imagenome import build_chest_imagenome
from engine.data.adapters.chexmask import build_chexmask
from engine.data.adapters.common import AdapterError, rle_decode
from engine.data.adapters.medical_diff_vqa import build_medical_diff_vqa
from engine.data.manifest import read_manifest
from tests.engine.adapter_layouts import assert_loadable, extent, mimic_cxr_jpg, real_mask, write_csv

SIZE = (512, 512)
# report sentences of the real IU report 10.xml
GRANULOMA = "Stable calcified granuloma within the right upper lung."
INFLATED = ("The lungs are normally inflated without evidence of focal airspace disease, pleural effusion, or "
            "pneumothorax.")
MASKS = {"right lung": "ISIC_0024311", "left lung": "ISIC_0027001", "heart": "ISIC_0027287"}


def rle_encode(mask: np.ndarray) -> str:
    """CheXmask's run-length encoding with numpy: 1-based starts and lengths over the row-major flattened mask."""
    flat = np.concatenate([[0], mask.astype(np.int8).flatten(), [0]])
    edges = np.flatnonzero(np.diff(flat)) + 1
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends))


@pytest.fixture()
def masks(shared_data):
    return {organ: real_mask(shared_data, name, SIZE) for organ, name in MASKS.items()}


@pytest.fixture()
def mimic(tmp_path, shared_data):
    return mimic_cxr_jpg(shared_data, tmp_path / "mimic-cxr-jpg")


def normalized(box):
    return tuple(v / SIZE[i % 2] for i, v in enumerate(box))


def assert_boxes(boxes, expected):
    """Boxes equal to the expected normalized extents (float tolerance: 224-space coordinates are rescaled)."""
    assert len(boxes) == len(expected)
    np.testing.assert_allclose([b.xyxy for b in boxes], expected, atol=1e-9)


def test_rle_round_trip_and_errors(masks):
    mask = masks["right lung"]
    assert np.array_equal(rle_decode(rle_encode(mask), *mask.shape), mask.astype(np.uint8))
    assert rle_decode("", 4, 5).sum() == 0
    assert rle_decode("1 3 7 2", 2, 5).tolist() == [[1, 1, 1, 0, 0], [0, 1, 1, 0, 0]]  # 1-based, row-major
    for bad, message in (("1 2 3", "pairs"), ("9 5", "outside"), ("a 1", "non-integer")):
        with pytest.raises(ValueError, match=message):
            rle_decode(bad, 2, 5)


def scene_graph(masks, dicom_id):
    right, left, heart = (extent(masks[o]) for o in ("right lung", "left lung", "heart"))
    return {
        "image_id": dicom_id, "patient_id": "10000032", "study_id": "50000001", "viewpoint": "PA",
        "objects": [
            {"object_id": f"{dicom_id}_right lung", "bbox_name": "right lung", "name": "Right lung",
             **{f"original_{k}": v for k, v in zip(("x1", "y1", "x2", "y2"), right)}},
            {"object_id": f"{dicom_id}_left lung", "bbox_name": "left lung", "name": "Left lung",  # 224 space only
             **{k: v * 224 / 512 for k, v in zip(("x1", "y1", "x2", "y2"), left)}},
            {"object_id": f"{dicom_id}_cardiac silhouette", "bbox_name": "cardiac silhouette",
             **{f"original_{k}": v for k, v in zip(("x1", "y1", "x2", "y2"), heart)}},
        ],
        "attributes": [
            {"bbox_name": "right lung", "attributes": [["anatomicalfinding|yes|lung opacity", "disease|no|pneumonia"]],
             "phrases": [GRANULOMA]},
            {"bbox_name": "left lung", "attributes": [["anatomicalfinding|yes|lung opacity"],
                                                     ["technicalassessment|yes|low lung volumes"]],
             "phrases": [INFLATED, f"  {INFLATED}"]},  # the same sentence twice (two labels lists)
            {"bbox_name": "cardiac silhouette", "attributes": [["anatomicalfinding|no|enlarged cardiac silhouette"]]},
        ],
    }


def test_chest_imagenome_boxes(tmp_path, mimic, masks):
    graphs = tmp_path / "imagenome" / "silver_dataset" / "scene_graph"
    graphs.mkdir(parents=True)
    for dicom_id in ("d-pa-1", "d-pa-4"):  # d-pa-4 is a test-split study
        (graphs / f"{dicom_id}_SceneGraph.json").write_text(json.dumps(scene_graph(masks, dicom_id)))
    out = tmp_path / "imagenome.jsonl"
    assert build_chest_imagenome(tmp_path / "imagenome", out, images_root=mimic) == 5
    samples = {s.sample_id: s for s in read_manifest(out, allowed_roots=[tmp_path])}
    assert_loadable(samples.values())
    assert Counter(s.task for s in samples.values()) == {"detection": 2, "classification": 1, "region_caption": 2}
    assert samples["chest-imagenome:d-pa-1:classification"].answer == "lung opacity"
    anatomy = samples["chest-imagenome:d-pa-1:anatomy"]  # every anatomy; training names up to nine per iteration
    assert anatomy.answer == "cardiac silhouette <DET>. left lung <DET>. right lung <DET>."
    assert anatomy.instruction_fields == {"image": "<img0>", "target": "cardiac silhouette, left lung, right lung"}
    expected = {o: normalized(extent(masks[o])) for o in masks}
    assert_boxes(anatomy.boxes, [expected["heart"], expected["left lung"], expected["right lung"]])
    pathology = samples["chest-imagenome:d-pa-1:pathology"]  # present with boxes, absent ones as <N/A> classes
    assert pathology.answer == ("lung opacity <DET>. lung opacity <DET>. enlarged cardiac silhouette <N/A>. "
                                "pneumonia <N/A>.")
    assert pathology.absent_classes == ("enlarged cardiac silhouette", "pneumonia")
    assert_boxes(pathology.boxes, [expected["left lung"], expected["right lung"]])
    left = samples["chest-imagenome:d-pa-1:region:left lung"]
    assert left.answer == INFLATED and samples["chest-imagenome:d-pa-1:region:right lung"].answer == GRANULOMA
    x0, y0, x1, y1 = expected["left lung"]
    assert f"[{x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}]" in left.instruction and "<img0>" in left.instruction
    (graphs / "d-pa-1_SceneGraph.json").write_text("{")
    with pytest.raises(AdapterError, match=r"malformed Chest ImaGenome scene graph .*d-pa-1_SceneGraph\.json"):
        build_chest_imagenome(tmp_path / "imagenome", out, images_root=mimic)
    with pytest.raises(AdapterError, match=r"scene graphs not found: .*silver_dataset/scene_graph"):
        build_chest_imagenome(tmp_path / "none", out, images_root=mimic)


def test_chexmask_masks_and_boxes(tmp_path, shared_data, masks):
    root = tmp_path / "chexmask"
    nih = tmp_path / "nih"
    (nih / "images").mkdir(parents=True)
    (nih / "images" / "00000001_000.png").write_bytes((shared_data / "cxr_png" / "00000001_000.png").read_bytes())
    header = ["Image Index", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks", "Left Lung", "Right Lung", "Heart",
              "Height", "Width"]
    row = ["00000001_000.png", 0.9, 0.92, "1,2", rle_encode(masks["left lung"]), rle_encode(masks["right lung"]), "",
           512, 512]
    csv_path = write_csv(root / "OriginalResolution" / "ChestX-Ray8.csv", header, [row])
    out = tmp_path / "manifest" / "chexmask.jsonl"
    assert build_chexmask(root, out, images_root=nih, source="chestx-ray8") == 3  # no heart mask in this row
    samples = {s.sample_id: s for s in read_manifest(out, decode=True, allowed_roots=[tmp_path])}
    assert_loadable(samples.values())
    left = samples["chexmask:00000001_000:left lung"]
    assert left.answer == "The segmentation mask of left lung is <2DSEG>." and left.masks[0].label == "left lung"
    assert left.masks[0].path == str(out.parent / "chexmask_masks" / "00000001_000_left_lung.png")
    with Image.open(left.masks[0].path) as png:
        assert np.array_equal(np.asarray(png) > 0, masks["left lung"])
    detection = samples["chexmask:00000001_000:detection"]
    assert detection.answer == "left lung <DET>. right lung <DET>."
    assert_boxes(detection.boxes, [normalized(extent(masks["left lung"])), normalized(extent(masks["right lung"]))])
    write_csv(csv_path, header, [row[:7] + [1024, 1024]])
    with pytest.raises(AdapterError, match=r"ChestX-Ray8\.csv line 2: mask size 1024x1024 differs from the image "
                                           r"size 512x512 of .*00000001_000\.png"):
        build_chexmask(root, out, images_root=nih, source="chestx-ray8")
    write_csv(csv_path, header, [row[:4] + ["5 x"] + row[5:]])
    with pytest.raises(AdapterError, match=r"line 2, column 'Left Lung': RLE holds a non-integer"):
        build_chexmask(root, out, images_root=nih, source="chestx-ray8")
    with pytest.raises(AdapterError, match=r"CheXmask csv not found: .*MIMIC-CXR-JPG\.csv"):
        build_chexmask(root, out, images_root=nih)


def test_chexmask_on_mimic_cxr_jpg(tmp_path, mimic, masks):
    root = tmp_path / "chexmask"
    write_csv(root / "OriginalResolution" / "MIMIC-CXR-JPG.csv",
              ["dicom_id", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks", "Left Lung", "Right Lung", "Heart",
               "Height", "Width"],
              [["d-pa-1", 0.9, 0.9, "", *(rle_encode(masks[o]) for o in ("left lung", "right lung", "heart")),
                512, 512]])
    out = tmp_path / "chexmask.jsonl"
    assert build_chexmask(root, out, images_root=mimic, detection=False) == 3
    heart = {s.sample_id: s for s in read_manifest(out, allowed_roots=[tmp_path])}["chexmask:d-pa-1:heart"]
    assert Path(heart.images[0].path).name == "d-pa-1.jpg"


def test_medical_diff_vqa(tmp_path, mimic):
    root = tmp_path / "diffvqa"
    write_csv(root / "mimic_pair_questions.csv",
              ["study_id", "subject_id", "ref_id", "question_type", "question", "answer", "split"],
              [["50000002", "10000032", "50000001", "abnormality", "what abnormalities are seen in this image?",
                "pleural effusion", "train"],
               ["50000002", "10000032", "50000001", "difference", "what has changed compared to the reference image?",
                "the main image has an additional finding of edema than the reference image.", "train"],
               ["50000004", "10000099", "50000004", "view", "which view is this image taken?", "PA view", "test"],
               ["50000003", "10000032", "50000001", "presence", "is there edema?", "no", "train"]])
    out = tmp_path / "vqa.jsonl"
    assert build_medical_diff_vqa(root, out, images_root=mimic) == 2
    vqa, difference = read_manifest(out, allowed_roots=[tmp_path])
    assert_loadable([vqa, difference])
    assert (vqa.task, vqa.instruction, vqa.answer) == ("vqa", "<img0> what abnormalities are seen in this image?",
                                                      "pleural effusion")
    assert [Path(i.path).name for i in vqa.images] == ["d-ap-2.jpg"]
    assert difference.task == "longitudinal" and difference.answer.startswith("the main image has an additional")
    assert [(Path(i.path).name, i.role) for i in difference.images] == [
        ("d-ap-2.jpg", "current"), ("d-pa-1.jpg", "prior"), ("d-lat-1.jpg", "prior")]
    assert "<img0>" in difference.instruction and "<img1><img2>" in difference.instruction
    (root / "mimic_pair_questions.csv").write_text("study_id,question\n1,x\n")
    with pytest.raises(AdapterError, match=r"mimic_pair_questions\.csv lacks the column\(s\) \['subject_id'"):
        build_medical_diff_vqa(root, out, images_root=mimic)


def test_malformed_rows_and_unreadable_images_are_named(tmp_path, shared_data, mimic, masks):
    root, nih = tmp_path / "chexmask", tmp_path / "nih"
    (nih / "images").mkdir(parents=True)
    image = nih / "images" / "00000001_000.png"
    image.write_bytes((shared_data / "cxr_png" / "00000001_000.png").read_bytes())
    header = ["Image Index", "Left Lung", "Right Lung", "Heart", "Height", "Width"]
    csv_path = write_csv(root / "OriginalResolution" / "ChestX-Ray8.csv", header,
                         [["00000001_000.png", rle_encode(masks["left lung"]), "", "", "512px", 512]])
    out = tmp_path / "o.jsonl"
    with pytest.raises(AdapterError, match=rf"{csv_path} line 2: Height '512px' and Width '512' must be integers"):
        build_chexmask(root, out, images_root=nih, source="chestx-ray8")
    write_csv(csv_path, header, [["00000001_000.png", rle_encode(masks["left lung"]), "", "", 512, 512]])
    image.write_text("not an image")
    with pytest.raises(AdapterError, match=rf"cannot read the ChestX-ray8 image {image}: "):
        build_chexmask(root, out, images_root=nih, source="chestx-ray8")

    graphs = tmp_path / "imagenome" / "silver_dataset" / "scene_graph"
    graphs.mkdir(parents=True)
    graph = graphs / "d-pa-1_SceneGraph.json"
    for content, message in (([1, 2], "must hold a JSON object, got list"),
                             ({"objects": [{"bbox_name": "heart", "x1": "left", "y1": 1, "x2": 5, "y2": 5}]},
                              "could not convert string to float: 'left'")):
        graph.write_text(json.dumps(content))
        with pytest.raises(AdapterError, match=rf"malformed Chest ImaGenome scene graph {graph}: .*{message}"):
            build_chest_imagenome(tmp_path / "imagenome", out, images_root=mimic)
    graph.write_text(json.dumps(scene_graph(masks, "d-pa-1")))
    jpg = mimic / "files" / "p10" / "p10000032" / "s50000001" / "d-pa-1.jpg"
    jpg.write_bytes(b"")
    with pytest.raises(AdapterError, match=rf"cannot read the MIMIC-CXR-JPG image {jpg}: "):
        build_chest_imagenome(tmp_path / "imagenome", out, images_root=mimic)
    assert not out.exists()
