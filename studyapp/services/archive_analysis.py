"""The analysis an archive holds: run with fixed settings (offline judge, bootstrap seed :data:`SEED`, default
resamples) on the study as the caller's transaction sees it, and the check that a restored study reproduces it.

Reproduced means: every table CSV, ``columns.csv`` and ``skipped.csv`` of the restored study's analysis equals the
archived one cell for cell, as text; the one database id in the tables (``readings.assignment_id``) is compared
after mapping the restored ids back to the archived ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from studyapp.db.models import ReaderStudy
from studyapp.services.archive_format import ANALYSIS, OpenedArchive

#: Bootstrap seed of the archived analysis (``python -m analysis --seed``'s default).
SEED = 0
#: ``{table: column}`` of analysis tables holding an Assignment id.
ASSIGNMENT_ID_COLUMNS = {"readings": "assignment_id"}


def run_analysis(session: Session, study: ReaderStudy, out_dir: Path) -> dict[str, Any]:
    """Run the analysis (``analysis.pipeline.run_analysis``, offline judge) of ``study`` into ``out_dir``, reading in
    the caller's transaction (its sessions never commit or roll it back), so rows and tables agree.

    Returns:
        The settings and tables for ``archive.json``: ``tables``, ``judge``, ``similarity_measure``,
        ``n_resamples``, ``seed``, ``skipped_items``; or ``{"tables": [], "not_run": reason}`` for a study without
        a usable reading.
    """
    from analysis.judges import OfflineJudge
    from analysis.pipeline import run_analysis as run

    sessions = sessionmaker(bind=session.connection(), join_transaction_mode="rollback_only")
    try:
        result = run(sessions, study.id, out_dir, OfflineJudge(), seed=SEED)
    except ValueError as error:
        return {"tables": [], "not_run": str(error)}
    return {"tables": sorted(result.tables), "judge": result.judge, "similarity_measure": result.similarity_measure,
            "n_resamples": result.n_resamples, "seed": SEED, "skipped_items": len(result.skipped)}


def _read(path: Path) -> pd.DataFrame:
    """A CSV as text cells exactly as written (no number parsing, empty cells as empty text)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def differences(archive: OpenedArchive, out_dir: Path, assignment_ids: dict[int, int]) -> list[str]:
    """Compare the analysis written to ``out_dir`` (of the restored study) with the archived one.

    Args:
        assignment_ids: archived Assignment id -> restored id (``InsertedRows.ids["assignments"]``).

    Returns:
        One line per table that differs (its name and the first differing column or shape); empty when every table
        is reproduced.
    """
    archived_ids = {str(new): str(old) for old, new in assignment_ids.items()}
    names = [*archive.manifest["analysis"]["tables"], "columns", "skipped"]
    found = []
    for name in names:
        old_path, new_path = archive.root / ANALYSIS / f"{name}.csv", out_dir / f"{name}.csv"
        if not new_path.exists():
            found.append(f"{name}: not written by the restored study's analysis")
            continue
        old, new = _read(old_path), _read(new_path)
        if name in ASSIGNMENT_ID_COLUMNS:
            column = ASSIGNMENT_ID_COLUMNS[name]
            new[column] = new[column].map(lambda value: archived_ids.get(value, f"unmapped {value}"))
        if list(old.columns) != list(new.columns) or old.shape != new.shape:
            found.append(f"{name}: columns or shape differ ({old.shape} archived, {new.shape} restored)")
            continue
        differing = [column for column in old.columns if not old[column].equals(new[column])]
        if differing:
            found.append(f"{name}: column(s) {', '.join(differing)} differ")
    return found


def check_restored(session: Session, archive: OpenedArchive, study: ReaderStudy,
                   assignment_ids: dict[int, int]) -> list[str]:
    """Run the analysis of the restored ``study`` (in a temporary folder) and list its :func:`differences` from
    the archived one.

    Raises:
        ValueError: the archive holds no analysis (its ``not_run`` reason is in the message).
    """
    if not archive.manifest["analysis"]["tables"]:
        raise ValueError(f"the archive holds no analysis: {archive.manifest['analysis'].get('not_run')}")
    with tempfile.TemporaryDirectory() as out:
        run_analysis(session, study, Path(out))
        return differences(archive, Path(out), assignment_ids)
