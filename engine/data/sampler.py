"""Domain-aware minibatches (paper 4.3): every batch holds one task group of one imaging type.

The task groups are the paper's seven: image captioning (findings, impression and full report samples together,
:data:`TASK_GROUPS`), classification, detection, segmentation, VQA, region captioning and longitudinal captioning.
Each step picks an imaging type by weight, then a task group of that type by weight (drawn jointly from the product
of the two, the same distribution). All ranks pick the same (imaging type, task group) at a step - every process runs
the same heads at the same step - and each draws the batch from its own disjoint shard of that group.

Iteration is epoch-free (infinite): each (imaging type, task group) pool is a shuffled permutation of the rank's shard,
refilled with a fresh permutation when used up, so every sample of a pool is seen once before any is repeated
(a batch may straddle a refill). Everything is a function of ``(seed, step)``: the domain of step ``s`` comes from
``numpy.random.default_rng([seed, 0, s // CHUNK])``, the ``e``-th permutation of pool ``g`` on rank ``r`` from
``default_rng([seed, 1, g, e, r])``; the state is only the step count, and resuming replays the domain draws.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np

from engine.data.schema import Sample

log = logging.getLogger(__name__)

#: Steps whose domains are drawn together (one generator per chunk).
CHUNK = 1024

#: Tasks that the sampler treats as one group (paper 4.3: "image captioning" is one of the seven groups; its
#: findings, impression and report variants share its weight). Other tasks are their own group.
TASK_GROUPS = {"findings": "captioning", "impression": "captioning", "report": "captioning"}


def task_group(task: str) -> str:
    """The sampler group of ``task`` (:data:`TASK_GROUPS`; the task itself otherwise)."""
    return TASK_GROUPS.get(task, task)


class DomainBatchSampler:
    """Infinite iterable of batches (lists of indices into ``samples``), one (imaging type, task group) per batch.

    Args:
        samples: the training samples (only ``imaging`` and ``task`` are read).
        batch_size: samples per batch (per rank).
        imaging_weights: ``{imaging type: weight}`` covering every imaging type present; ``None``: equal weights.
            A weight of 0 leaves the type out.
        task_weights: ``{imaging type: {task group: weight}}`` (group names: :func:`task_group`, e.g.
            ``"captioning"``); an imaging type given here must list all its groups present; types not given (or
            ``None``): equal weights.
        seed: non-negative int; the same seed gives the same batches.
        rank, world_size: this process's shard (``0 <= rank < world_size``); shards are disjoint. A group with
            fewer samples than ``world_size`` is left out (logged), since some rank would have none of it.

    Raises:
        ValueError: bad batch size, seed, rank or world size; a weight for an imaging type or task not in the
            data, a missing or negative weight; no group left with a positive weight.

    When a ``torch.utils.data.DataLoader`` prefetches batches, :meth:`state_dict` is ahead of the training loop;
    pass the number of batches the loop consumed as ``state_dict(step=...)``.
    """

    def __init__(self, samples: Sequence[Sample], batch_size: int,
                 imaging_weights: dict[str, float] | None = None,
                 task_weights: dict[str, dict[str, float]] | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        members: dict[tuple[str, str], list[int]] = {}
        for index, sample in enumerate(samples):
            members.setdefault((sample.imaging, task_group(sample.task)), []).append(index)
        if not members:
            raise ValueError("no samples")
        self.groups = sorted(members)
        self.probabilities = _group_probabilities(self.groups, imaging_weights, task_weights)
        self.shards = []
        for g, key in enumerate(self.groups):
            order = np.random.default_rng([seed, 2, g]).permutation(np.asarray(members[key]))
            self.shards.append(order[rank::world_size])
            if len(members[key]) < world_size and self.probabilities[g] > 0:
                log.warning("leaving out %s/%s: %d sample(s) for %d processes", *key, len(members[key]), world_size)
                self.probabilities[g] = 0.0
        total = self.probabilities.sum()
        if total <= 0:
            raise ValueError("no (imaging type, task) group with a positive weight and enough samples")
        self.probabilities /= total
        self._group_of_index = {int(i): key for key, shard in zip(self.groups, self.shards) for i in shard}
        self._set_step(0)

    def group_of(self, batch: list[int]) -> tuple[str, str]:
        """``(imaging type, task group)`` of a batch from this sampler."""
        return self._group_of_index[batch[0]]

    def __iter__(self) -> Iterator[list[int]]:
        """Batches from the current step on, forever (a second ``iter`` continues, it does not restart)."""
        while True:
            g = int(self._domains(self.step // CHUNK)[self.step % CHUNK])
            batch = [self._draw(g) for _ in range(self.batch_size)]
            self.step += 1
            yield batch

    def state_dict(self, step: int | None = None) -> dict:
        """JSON-serialisable state: the step count (``step``: the batches actually consumed, default all yielded)
        and what the batches depend on, checked on load."""
        return {"step": self.step if step is None else int(step), **self._identity()}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly after the state's step.

        Raises:
            ValueError: the state comes from a sampler with other samples, weights, seed, batch size or sharding.
        """
        identity = self._identity()
        differing = sorted(k for k in identity if state.get(k) != identity[k])
        if differing:
            raise ValueError(f"sampler state does not match this sampler (differs in {differing})")
        self._set_step(int(state["step"]))

    # -------------------------------------------------------------------------------------------------

    def _identity(self) -> dict:
        return {"seed": self.seed, "batch_size": self.batch_size, "rank": self.rank, "world_size": self.world_size,
                "groups": [f"{imaging}/{task}" for imaging, task in self.groups],
                "group_sizes": [int(len(s)) for s in self.shards],
                "probabilities": [round(float(p), 12) for p in self.probabilities]}

    def _domains(self, chunk: int) -> np.ndarray:
        if self._chunk != chunk:
            rng = np.random.default_rng([self.seed, 0, chunk])
            self._chunk_domains = rng.choice(len(self.groups), size=CHUNK, p=self.probabilities)
            self._chunk = chunk
        return self._chunk_domains

    def _draw(self, g: int) -> int:
        shard = self.shards[g]
        epoch, position = divmod(self._drawn[g], len(shard))
        if self._epochs[g] != epoch:
            self._orders[g] = np.random.default_rng([self.seed, 1, g, epoch, self.rank]).permutation(shard)
            self._epochs[g] = epoch
        self._drawn[g] += 1
        return int(self._orders[g][position])

    def _set_step(self, step: int) -> None:
        """Replay the domain draws of steps ``< step`` to know how far each pool has been drawn."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self._chunk, self._chunk_domains = -1, None
        counts = np.zeros(len(self.groups), dtype=np.int64)
        for chunk in range(step // CHUNK + 1):
            domains = self._domains(chunk)[: min(CHUNK, step - chunk * CHUNK)]
            counts += np.bincount(domains, minlength=len(self.groups))
        self.step = step
        self._drawn = [int(c) * self.batch_size for c in counts]
        self._epochs = [-1] * len(self.groups)
        self._orders = [None] * len(self.groups)


def _group_probabilities(groups: list[tuple[str, str]], imaging_weights: dict[str, float] | None,
                         task_weights: dict[str, dict[str, float]] | None) -> np.ndarray:
    """Unnormalised ``P(imaging) * P(task | imaging)`` per group (both normalised over what is present)."""
    tasks: dict[str, list[str]] = {}
    for imaging, task in groups:
        tasks.setdefault(imaging, []).append(task)
    imaging_w = _weights("imaging_weights", imaging_weights, list(tasks))
    task_weights = task_weights or {}
    unknown = sorted(set(task_weights) - set(tasks))
    if unknown:
        raise ValueError(f"task_weights has imaging type(s) {unknown} not in the data; present: {sorted(tasks)}")
    task_w = {imaging: _weights(f"task_weights[{imaging!r}]", task_weights.get(imaging), names)
              for imaging, names in tasks.items()}
    return np.array([imaging_w[imaging] * task_w[imaging][task] for imaging, task in groups], dtype=np.float64)


def _weights(what: str, given: dict[str, float] | None, present: list[str]) -> dict[str, float]:
    """``given`` normalised over ``present`` (equal when ``None``); all zero -> all zero."""
    if given is None:
        return {name: 1.0 / len(present) for name in present}
    unknown = sorted(set(given) - set(present))
    missing = sorted(set(present) - set(given))
    if unknown:
        raise ValueError(f"{what} has {unknown}, not in the data; present: {sorted(present)}")
    if missing:
        raise ValueError(f"{what} lacks {missing} (present in the data); give 0 to leave it out")
    bad = {k: v for k, v in given.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0}
    if bad:
        raise ValueError(f"{what} must be non-negative numbers, got {bad}")
    total = float(sum(given.values()))
    return {name: (given[name] / total if total > 0 else 0.0) for name in present}
