"""Fixtures of the comparison tests."""

import pytest

from .builders import make_study


@pytest.fixture()
def small(db):
    """6 cases (3 normal, 3 abnormal), 3 readers; a set 'pilot' reference vs draft:model, 2 readers per pair."""
    from studyapp.services import comparisons

    with db.begin() as s:
        study, readers, coordinator = make_study(s, 3, 3, 3)
        cset = comparisons.create_comparison_set(
            s, study, "pilot", "reference", "draft:model", "draft:model", seed=7, readers_per_pair=2
        )
        comparisons.assign_readers(s, cset)
        ids = {"study": study.id, "set": cset.id, "readers": [r.username for r in readers],
               "coordinator": coordinator.username}
    return db, ids
