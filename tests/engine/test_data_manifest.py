"""Manifest round trip and every bad-input error, on the real files in ../shared/data."""

import json
from dataclasses import asdict

import nibabel
import numpy as np
import pytest
from PIL import Image

from engine.data.manifest import ManifestError, read_manifest, write_manifest
from engine.processing import Task, instruction
from tests.engine.data_samples import det_2d, seg_2d, seg_3d, vqa, derm  # noqa: F401  (fixture)


def test_round_trip_resolves_relative_paths(derm, shared_data):
    samples = [seg_2d(), det_2d(shared_data), seg_3d(shared_data), vqa(shared_data)]
    path = write_manifest(samples, derm / "manifest.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and json.loads(lines[0]) == json.loads(json.dumps(asdict(samples[0])))
    read = read_manifest(path, decode=True, allowed_roots=[shared_data])
    assert read[1:] == samples[1:]
    assert read[0].images[0].path == str(derm / "lesion.jpg") and read[0].masks[0].path == str(derm / "lesion_mask.png")
    assert read[0].masks[0].label == "lesion" and read[2].masks[0].value == 5
    assert read[1].boxes[0].xyxy == (0.3, 0.4, 0.7, 0.8) and isinstance(read[1].boxes[0].xyxy, tuple)
    assert [s.is_3d for s in read] == [False, False, True, False]


def _write_rows(folder, rows):
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _bad_rows(derm, shared_data):
    """(name, row, fragment of the expected reason)."""
    seg = asdict(seg_2d("bad"))
    det = asdict(det_2d(shared_data)) | {"sample_id": "bad"}
    ct = asdict(seg_3d(shared_data)) | {"sample_id": "bad"}
    truncated = derm / "truncated.jpg"
    truncated.write_bytes((derm / "lesion.jpg").read_bytes()[:10])
    small = np.asarray(Image.open(derm / "lesion_mask.png"))[:400]
    Image.fromarray(small).save(derm / "small_mask.png")
    seg_img = nibabel.load(shared_data / "nifti" / "example_seg.nii.gz")
    nibabel.save(nibabel.Nifti1Image(np.asarray(seg_img.dataobj)[:, :, :20], seg_img.affine), derm / "short_seg.nii.gz")
    return [
        ("missing image", seg | {"images": [{"path": "nowhere.jpg", "modality": "dermoscopy"}]}, "images[0] file not found"),
        ("missing mask", seg | {"masks": [{"path": "nomask.png", "label": "lesion"}]}, "masks[0] file not found"),
        ("unreadable image", seg | {"images": [{"path": "truncated.jpg", "modality": "dermoscopy"}]}, "images[0] unreadable"),
        ("2D mask shape", seg | {"masks": [{"path": "small_mask.png", "label": "lesion"}]},
         "masks[0] ('lesion') has shape [400, 600] but images[0] has [450, 600]"),
        ("3D mask shape", ct | {"masks": [{"path": str(derm / "short_seg.nii.gz"), "label": "liver"}]},
         "has shape [122, 101, 20] but images[0] has [122, 101, 30]"),
        ("box outside", det | {"boxes": [{"label": "heart", "xyxy": [0.3, 0.4, 1.2, 0.8]}]}, "outside [0, 1]"),
        ("box reversed", det | {"boxes": [{"label": "heart", "xyxy": [0.7, 0.4, 0.3, 0.8]}]}, "x0 > x1"),
        ("box arity", det | {"boxes": [{"label": "heart", "xyxy": [0.3, 0.4, 0.7]}]}, "must have 4 numbers"),
        ("unknown task", seg | {"task": "captioning"}, "unknown task 'captioning'"),
        ("unknown imaging", seg | {"imaging": "mri"}, "unknown imaging type 'mri'"),
        ("modality differs", seg | {"imaging": "chest_xray"}, "differs from the sample's imaging 'chest_xray'"),
        ("det count", det | {"answer": "heart <DET>. nodule <DET>."}, "answer has 2 <DET> but 1 box target(s)"),
        ("seg count", seg | {"answer": "No lesion."}, "answer has 0 <2DSEG> but 1 mask target(s)"),
        ("wrong seg token", ct | {"answer": "liver <2DSEG>."}, "answer of a 3D sample contains <2DSEG>"),
        ("image reference", seg | {"instruction": "Segment the lesion in <img1>."}, "refers to <img1>"),
        ("unknown field", seg | {"labels": []}, "unknown field(s) ['labels']"),
        ("missing field", {k: v for k, v in seg.items() if k != "answer"}, "lacks the field(s) ['answer']"),
        ("wrong type", seg | {"answer": 3}, "answer must be a str"),
        ("bad role", seg | {"images": [{"path": "lesion.jpg", "modality": "dermoscopy", "role": "old"}]}, "role 'old'"),
        ("mask index", seg | {"masks": [{"path": "lesion_mask.png", "label": "lesion", "image_index": 1}]},
         "masks[0].image_index 1 out of range"),
        ("JPEG mask", seg | {"masks": [{"path": "lesion.jpg", "label": "lesion"}]},
         "masks[0] unreadable (ValueError: a 2D mask must be a PNG file)"),
    ]


def test_each_bad_row_names_file_line_and_problem(derm, shared_data):
    good = asdict(seg_2d())
    for name, row, reason in _bad_rows(derm, shared_data):
        path = _write_rows(derm, [good, row])
        with pytest.raises(ManifestError) as info:
            read_manifest(path, allowed_roots=[shared_data])
        assert f"{path}:2: " in str(info.value), name
        assert reason in str(info.value), (name, str(info.value))
        assert [line for line, _ in info.value.errors] == [2], name


def test_not_json_and_duplicate_id(derm):
    good = json.dumps(asdict(seg_2d()))
    path = derm / "manifest.jsonl"
    path.write_text(f"{good}\n\n{{not json\n{good}\n", encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert info.value.errors[0] == (3, "not valid JSON (Expecting property name enclosed in double quotes at column 2)")
    assert info.value.errors[1] == (4, "duplicate sample_id 'derm-seg-1' (first on line 1)")
    assert "2 invalid row(s)" in str(info.value)


def test_skip_invalid_returns_valid_rows_and_reasons(derm, shared_data, caplog):
    rows = [asdict(seg_2d("a"))] + [r for _, r, _ in _bad_rows(derm, shared_data)][:5] + [asdict(seg_2d("b"))]
    samples, errors = read_manifest(_write_rows(derm, rows), skip_invalid=True, allowed_roots=[shared_data])
    assert [s.sample_id for s in samples] == ["a", "b"]
    assert [line for line, _ in errors] == [2, 3, 4, 5, 6]
    assert "skipped 5 invalid row(s) of 7" in caplog.text


def test_check_files_off_skips_only_file_checks(derm, shared_data):
    missing = asdict(seg_2d()) | {"images": [{"path": "nowhere.jpg", "modality": "dermoscopy"}]}
    assert read_manifest(_write_rows(derm, [missing]), check_files=False)[0].images[0].path == str(derm / "nowhere.jpg")
    with pytest.raises(ManifestError, match="outside"):
        read_manifest(_write_rows(derm, [_bad_rows(derm, shared_data)[5][1]]), check_files=False,
                      allowed_roots=[shared_data])


def testvqa_has_no_templates():
    with pytest.raises(ValueError, match="vqa has no instruction templates"):
        instruction(Task.VQA)


def test_truncated_png_and_jpeg_are_unreadable_without_decode(derm, shared_data):
    png = (shared_data / "cxr_png" / "00000001_000.png").read_bytes()
    (derm / "half.png").write_bytes(png[:len(png) // 2])
    jpeg = (derm / "lesion.jpg").read_bytes()
    (derm / "half.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    mask = (derm / "lesion_mask.png").read_bytes()
    (derm / "half_mask.png").write_bytes(mask[:len(mask) // 2])
    seg = asdict(seg_2d("bad"))
    rows = [asdict(seg_2d()), seg | {"images": [{"path": "half.jpg", "modality": "dermoscopy"}]},
            seg | {"sample_id": "bad2", "masks": [{"path": "half_mask.png", "label": "lesion"}]},
            asdict(det_2d(shared_data)) | {"images": [{"path": "half.png", "modality": "chest_xray"}]}]
    _, errors = read_manifest(_write_rows(derm, rows), skip_invalid=True)
    assert [line for line, _ in errors] == [2, 3, 4]
    assert errors[0][1].startswith("images[0] unreadable") and errors[0][1].endswith(str(derm / "half.jpg"))
    assert errors[1][1].startswith("masks[0] unreadable") and errors[1][1].endswith(str(derm / "half_mask.png"))
    assert errors[2][1].startswith("images[0] unreadable") and "Truncated" in errors[2][1]


def test_lines_that_do_not_parse_are_row_errors(derm):
    good = json.dumps(asdict(seg_2d()))
    path = derm / "manifest.jsonl"
    path.write_bytes(f"{good}\n".encode() + b'{"sample_id": "\xff"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n"
                     + json.dumps(asdict(seg_2d("b"))).encode() + b"\n")
    samples, errors = read_manifest(path, skip_invalid=True)
    assert [s.sample_id for s in samples] == ["derm-seg-1", "b"]
    assert errors == [(2, "not UTF-8 text (byte 0xff at column 16)"), (3, "not valid JSON (nested too deeply)")]


def test_huge_values_are_shortened_in_messages(derm):
    rows = [asdict(seg_2d()) | {"task": "x" * 1_000_000}, asdict(seg_2d("b")) | {"sample_id": ["a"] * 100_000}]
    _, errors = read_manifest(_write_rows(derm, rows), skip_invalid=True)
    assert [line for line, _ in errors] == [1, 2]
    assert all(len(reason) < 300 for _, reason in errors), [len(r) for _, r in errors]
    assert errors[0][1].startswith("unknown task 'xxxx") and "(1000002 characters)" in errors[0][1]
    assert errors[1][1].startswith("sample_id must be a str, got ['a', 'a'")


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
def test_empty_manifest_is_an_error(derm, text):
    path = derm / "manifest.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError, match=r"manifest.jsonl:1: the manifest holds no rows"):
        read_manifest(path)
    assert read_manifest(path, skip_invalid=True) == ([], [(1, "the manifest holds no rows (empty file)")])
