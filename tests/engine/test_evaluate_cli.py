"""``python -m engine.evaluate`` end to end on a tiny random checkpoint and a manifest of real files."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from engine import evaluate
from engine.data.manifest import write_manifest
from engine.data.schema import BoxTarget, ImageRef, MaskTarget, Sample
from engine.evaluation.scoring import score_task
from engine.processing import instruction


@pytest.fixture()
def manifest(tmp_path, shared_data, iu_report):
    derm = shared_data / "derm"
    mask = np.asarray(Image.open(derm / "masks" / "ISIC_0024311.png").convert("L")) > 127
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    box = (cols.min() / w, rows.min() / h, (cols.max() + 1) / w, (rows.max() + 1) / h)
    chest = ImageRef(str(shared_data / "cxr_png" / "00000001_000.png"), "chest_xray")
    lesion = ImageRef(str(derm / "images" / "ISIC_0024311.jpg"), "dermoscopy")
    samples = [
        Sample("iu-1", "iu-xray", "findings", "chest_xray", (chest,), instruction("findings"), iu_report["FINDINGS"]),
        Sample("iu-2", "iu-xray", "impression", "chest_xray", (chest,), instruction("impression"),
               iu_report["IMPRESSION"]),
        Sample("ham-1", "ham10000", "segmentation", "dermoscopy", (lesion,),
               instruction("segmentation", target="lesion"), "The segmentation mask of lesion is <2DSEG>.",
               masks=(MaskTarget(str(derm / "masks" / "ISIC_0024311.png"), "lesion"),)),
        Sample("ham-2", "ham10000", "detection", "dermoscopy", (lesion,),
               instruction("detection", target="lesion"), "lesion <DET>.", boxes=(BoxTarget("lesion", box),)),
    ]
    path = tmp_path / "eval.jsonl"
    write_manifest(samples, path)
    return path


def test_evaluate_writes_scores_for_every_task(tmp_path, tiny_checkpoint, manifest, shared_data, capsys):
    out = tmp_path / "out"
    evaluate.main(["--checkpoint", str(tiny_checkpoint), "--manifest", str(manifest), "--out", str(out),
                   "--max-new-tokens", "8", "--n-resamples", "50", "--allow-root", str(shared_data)])
    with (out / "scores.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["task"], r["metric"]) for r in rows} == {
        ("findings", "bleu4"), ("findings", "rouge_l"), ("impression", "bleu4"), ("impression", "rouge_l"),
        ("segmentation", "dice"), ("detection", "iou")}
    assert all(0.0 <= float(r["value"]) <= 1.0 and r["backend"] and r["n"] == "1" for r in rows)
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["sample_id"] for p in predictions] == ["iu-1", "iu-2", "ham-1", "ham-2"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["samples"] == 4 and provenance["versions"]["torch"].startswith("2.13.0")
    assert "scores written" in capsys.readouterr().out


def test_forced_reference_answer_scores_one(tiny_checkpoint, manifest, shared_data, medversa, force):
    from engine.data.manifest import read_manifest

    sample = read_manifest(manifest, allowed_roots=[shared_data])[0]
    processor = force(medversa.tokenizer, sample.answer + "###")
    (result,) = evaluate.predict(medversa, [sample], 1, max_new_tokens=200, logits_processor=[processor])
    prediction = evaluate.to_prediction(sample, result)
    scores = {s.metric: s.value for s in score_task("findings", [sample], [prediction])}
    assert scores["bleu4"] == pytest.approx(1.0) and scores["rouge_l"] == pytest.approx(1.0)


def test_unavailable_metric_is_reported_and_exit_status_one(tmp_path, tiny_checkpoint, manifest, shared_data, capsys):
    with pytest.raises(SystemExit) as stop:
        evaluate.main(["--checkpoint", str(tiny_checkpoint), "--manifest", str(manifest), "--out",
                       str(tmp_path / "o"), "--max-new-tokens", "4", "--n-resamples", "20", "--metrics", "bertscore",
                       "--allow-root", str(shared_data)])
    assert stop.value.code == 1
    assert "not computed: bertscore: no metrics folder configured" in capsys.readouterr().err
    provenance = json.loads((tmp_path / "o" / "provenance.json").read_text())
    assert "bertscore" in provenance["metrics_not_computed"]
    assert (tmp_path / "o" / "scores.csv").is_file()


def test_bad_manifest_and_unknown_metric_are_refused(tmp_path, tiny_checkpoint, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "x"}\n')
    with pytest.raises(SystemExit, match=r"(?s)error: .*bad.jsonl:1: the row lacks the field"):
        evaluate.main(["--checkpoint", str(tiny_checkpoint), "--manifest", str(bad), "--out", str(tmp_path / "o")])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SystemExit, match=r"(?s)error: .*empty.jsonl:1: the manifest holds no rows"):
        evaluate.main(["--checkpoint", str(tiny_checkpoint), "--manifest", str(empty), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
    (tmp_path / "o").write_text("previous notes")
    with pytest.raises(SystemExit, match=f"error: --out {tmp_path / 'o'} is a file, not a folder"):
        evaluate.main(["--checkpoint", str(tiny_checkpoint), "--manifest", str(bad), "--out", str(tmp_path / "o")])
    assert (tmp_path / "o").read_text() == "previous notes"
    with pytest.raises(SystemExit) as stop:  # a usage error: exit status 2, like argparse's own
        evaluate.main(["--checkpoint", str(tiny_checkpoint), "--manifest", str(bad), "--out", str(tmp_path / "o"),
                       "--metrics", "meteor"])
    assert stop.value.code == 2 and "unknown metric(s) ['meteor']" in capsys.readouterr().err


def test_corrupt_checkpoint_exits_one_naming_the_file(tmp_path, tiny_checkpoint, manifest, shared_data):
    import shutil

    broken = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(SystemExit, match=f"error: unreadable weights file {weights}"):
        evaluate.main(["--checkpoint", str(broken), "--manifest", str(manifest), "--out", str(tmp_path / "o"),
                       "--allow-root", str(shared_data)])


def test_manifest_paths_outside_its_folder_are_refused_unless_allowed(tmp_path, tiny_checkpoint, manifest):
    """Issue 18: manifest paths could leave the manifest's folder; now a path outside it and the allowed roots is
    an invalid row naming it, and nothing is generated."""
    with pytest.raises(SystemExit, match=r"(?s)eval.jsonl:1: images\[0\].path '.*00000001_000.png' resolves to .*, "
                                         r"outside the manifest's folder"):
        evaluate.main(["--checkpoint", str(tiny_checkpoint), "--manifest", str(manifest), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o" / "scores.csv").exists()
