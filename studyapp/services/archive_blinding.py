"""What a blinded archive leaves out: every link from a reading, draft or comparison to the arm or source it came
from, for sharing a study with reviewers before unblinding.

Left out of the rows (:func:`blind_rows`):

* drafts: their arm, source, sample flag, id and creation time (drafts are imported arm by arm, so ids and times
  would tell the arms apart); each case's drafts are listed in the order of their texts;
* draft findings (only model drafts carry boxes and masks);
* assignments: their arm (the design);
* the study's seed and each comparison set's seed (with the readers and cases they regenerate the design and the
  side order);
* comparison sets' candidate source and pairs' source names (sides stay A/B);
* audit event details that name an arm, a source, a seed or an imported file (:data:`BLINDED_DETAIL_KEYS`).

Left out of the archive (``studyapp.services.archive``): the reads export's arm and draft source columns, the
balance report (a case read by one reader shows that reader's arm) and the analysis outputs (every table is per arm).
The arms themselves (codes, labels) stay: they are the study definition, not the assignment. What no blinding
removes: a text may betray its source by its style, a draft equal to the study's normal template is one, and the
arms of practice reads follow from their positions (design rule 5, ``studyapp.services.design``; they are never
counted).
"""

from __future__ import annotations

import hashlib
from typing import Any

from studyapp.services.study_rows import Rows

#: ``{table: columns}`` left out of every row of a blinded archive.
BLINDED_COLUMNS = {
    "reader_studies": {"seed"},
    "drafts": {"id", "arm_id", "source", "is_sample", "created_at"},
    "assignments": {"arm_id"},
    "comparison_sets": {"seed", "candidate_source"},
    "comparison_pairs": {"source_1_name", "source_2_name"},
}
#: Tables left out of a blinded archive.
BLINDED_TABLES = {"draft_findings"}
#: Audit event detail keys left out of a blinded archive (``file``: a drafts file is often named after its source).
BLINDED_DETAIL_KEYS = {"arm", "source", "seed", "candidate_source", "file"}
#: Reads export columns left out of a blinded archive.
BLINDED_READS_COLUMNS = ["arm", "draft_source", "draft_is_sample"]


def _text_order(row: dict[str, Any]) -> tuple:
    return row["case_id"], hashlib.sha256(row["text"].encode("utf-8")).hexdigest()


def blind_rows(rows: Rows) -> Rows:
    """``rows`` (``studyapp.services.study_rows.read_rows``) without the links of the module docstring."""
    blinded: Rows = {}
    for table, table_rows in rows.items():
        if table in BLINDED_TABLES:
            continue
        dropped = BLINDED_COLUMNS.get(table, set())
        kept = [{key: value for key, value in row.items() if key not in dropped} for row in table_rows]
        if table == "drafts":
            kept.sort(key=_text_order)
        if table == "audit_events":
            kept = [row | {"detail": {key: value for key, value in (row["detail"] or {}).items()
                                      if key not in BLINDED_DETAIL_KEYS}} for row in kept]
        blinded[table] = kept
    return blinded
