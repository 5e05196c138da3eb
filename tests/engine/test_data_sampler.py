"""DomainBatchSampler: single-domain batches, weights, determinism, disjoint shards, exact resume."""

import itertools
import json
from collections import Counter

import pytest
from scipy.stats import chisquare

from engine.data.sampler import CHUNK, DomainBatchSampler, task_group
from engine.data.schema import ImageRef, Sample

#: (imaging, task) -> number of samples
SIZES = {("chest_xray", "report"): 40, ("chest_xray", "detection"): 25, ("chest_xray", "vqa"): 9,
         ("dermoscopy", "segmentation"): 12, ("dermoscopy", "classification"): 7, ("ct", "segmentation"): 5}


def _samples():
    samples = [Sample(f"{imaging}-{task}-{i}", "test", task, imaging, (ImageRef(f"{i}.png", imaging),), "<img0>?", "a")
               for (imaging, task), n in SIZES.items() for i in range(n)]
    # interleave so that group members are not contiguous
    return samples[::2] + samples[1::2]


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


IMAGING = {"chest_xray": 0.5, "dermoscopy": 0.3, "ct": 0.2}
TASKS = {"chest_xray": {"captioning": 2, "detection": 1, "vqa": 1}, "dermoscopy": {"segmentation": 1, "classification": 0}}


def test_batches_are_single_domain_and_follow_the_weights():
    samples = _samples()
    sampler = DomainBatchSampler(samples, 4, IMAGING, TASKS, seed=7)
    batches = _take(sampler, 2000)
    observed = Counter()
    for batch in batches:
        assert len(batch) == 4
        kinds = {(samples[i].imaging, task_group(samples[i].task)) for i in batch}
        assert len(kinds) == 1 and kinds == {sampler.group_of(batch)}
        observed[kinds.pop()] += 1
    expected = {("chest_xray", "captioning"): 0.25, ("chest_xray", "detection"): 0.125, ("chest_xray", "vqa"): 0.125,
                ("dermoscopy", "segmentation"): 0.3, ("ct", "segmentation"): 0.2}
    assert observed[("dermoscopy", "classification")] == 0 and set(observed) == set(expected)
    keys = sorted(expected)
    result = chisquare([observed[k] for k in keys], [2000 * expected[k] for k in keys])
    assert result.pvalue > 1e-3, (observed, result)
    # the same counts are far from equal task weights within chest X-ray (the test can fail)
    assert abs(observed[("chest_xray", "captioning")] - observed[("chest_xray", "detection")]) > 100


def test_findings_impression_and_report_are_one_captioning_group():
    """Paper 4.3: seven task groups; chest captioning gets one share, not one per section."""
    sizes = {"findings": 30, "impression": 30, "report": 30, "detection": 10}
    samples = [Sample(f"{task}-{i}", "test", task, "chest_xray", (ImageRef(f"{i}.png", "chest_xray"),), "<img0>?", "a")
               for task, n in sizes.items() for i in range(n)]
    sampler = DomainBatchSampler(samples, 2, seed=3)
    assert sampler.groups == [("chest_xray", "captioning"), ("chest_xray", "detection")]
    batches = _take(sampler, 1000)
    captioning = [b for b in batches if sampler.group_of(b) == ("chest_xray", "captioning")]
    assert 430 < len(captioning) < 570  # one half, not three quarters
    assert {samples[i].task for b in captioning for i in b} == {"findings", "impression", "report"}


def test_pools_refill_as_permutations():
    samples = _samples()
    sampler = DomainBatchSampler(samples, 3, seed=1)
    drawn: dict[tuple[str, str], list[int]] = {}
    for batch in _take(sampler, 600):
        drawn.setdefault(sampler.group_of(batch), []).extend(batch)
    for key, indices in drawn.items():
        n = SIZES[key if key[1] != "captioning" else (key[0], "report")]
        assert len(indices) > 2 * n
        for epoch in range(len(indices) // n):  # every sample once per pass through its pool
            assert sorted(indices[epoch * n:(epoch + 1) * n]) == sorted(set(indices))
        assert indices[:n] != indices[n:2 * n]  # refilled with a fresh shuffle


def test_same_seed_same_order_other_seed_other_order():
    samples = _samples()
    first = _take(DomainBatchSampler(samples, 4, IMAGING, seed=3), 300)
    assert first == _take(DomainBatchSampler(samples, 4, IMAGING, seed=3), 300)
    assert first != _take(DomainBatchSampler(samples, 4, IMAGING, seed=4), 300)


def test_two_ranks_draw_disjoint_shards_with_the_same_domains():
    samples = _samples()
    ranks = [DomainBatchSampler(samples, 2, seed=5, rank=r, world_size=2) for r in range(2)]
    seen = [set(), set()]
    for b0, b1 in zip(_take(ranks[0], 500), _take(ranks[1], 500)):
        assert ranks[0].group_of(b0) == ranks[1].group_of(b1)
        seen[0].update(b0)
        seen[1].update(b1)
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(len(samples)))
    three = DomainBatchSampler(samples, 2, seed=5, rank=0, world_size=6)  # ct/segmentation has 5 < 6 samples
    assert all(three.group_of(b) != ("ct", "segmentation") for b in _take(three, 300))


@pytest.mark.parametrize("stop", [0, 37, CHUNK + 13])
def test_resume_continues_exactly(stop):
    samples = _samples()
    reference = _take(DomainBatchSampler(samples, 3, IMAGING, TASKS, seed=11, rank=1, world_size=2), stop + 80)
    running = DomainBatchSampler(samples, 3, IMAGING, TASKS, seed=11, rank=1, world_size=2)
    assert _take(running, stop) == reference[:stop]
    state = json.loads(json.dumps(running.state_dict()))
    assert state["step"] == stop
    resumed = DomainBatchSampler(samples, 3, IMAGING, TASKS, seed=11, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert _take(resumed, 80) == reference[stop:]
    assert _take(running, 80) == reference[stop:]  # a second iter() continues


def test_prefetched_state_and_mismatched_state():
    samples = _samples()
    sampler = DomainBatchSampler(samples, 2, seed=0)
    batches = _take(sampler, 50)
    state = sampler.state_dict(step=45)  # the loop consumed 45, a loader prefetched 5
    again = DomainBatchSampler(samples, 2, seed=0)
    again.load_state_dict(state)
    assert _take(again, 5) == batches[45:]
    for other in (DomainBatchSampler(samples, 2, seed=1), DomainBatchSampler(samples, 3, seed=0),
                  DomainBatchSampler(samples[:-1], 2, seed=0), DomainBatchSampler(samples, 2, IMAGING, seed=0)):
        with pytest.raises(ValueError, match="sampler state does not match"):
            other.load_state_dict(state)


@pytest.mark.parametrize("kwargs, message", [
    ({"imaging_weights": {"chest_xray": 1, "dermoscopy": 1, "ct": 1, "mri": 1}}, r"has \['mri'\], not in the data"),
    ({"imaging_weights": {"chest_xray": 1}}, r"lacks \['ct', 'dermoscopy'\].*give 0"),
    ({"imaging_weights": {"chest_xray": -1, "dermoscopy": 1, "ct": 1}}, "non-negative"),
    ({"imaging_weights": {"chest_xray": 0, "dermoscopy": 0, "ct": 0}}, "no .* group with a positive weight"),
    ({"task_weights": {"chest_xray": {"captioning": 1}}}, r"task_weights\['chest_xray'\] lacks \['detection', 'vqa'\]"),
    ({"task_weights": {"chest_xray": {"report": 1, "detection": 1, "vqa": 1}}}, r"has \['report'\], not in the data"),
    ({"task_weights": {"mri": {"captioning": 1}}}, r"imaging type\(s\) \['mri'\] not in the data"),
    ({"rank": 2, "world_size": 2}, "rank must be in"),
    ({"seed": -1}, "non-negative int"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DomainBatchSampler(_samples(), 2, **kwargs)
