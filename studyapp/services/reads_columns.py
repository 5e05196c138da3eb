"""The fixed columns of the reads export (one row per reader x case), with their meaning: the export writes them
before one column per study question, and question codes may not take their names."""

#: Columns of the reads CSV, in order, with their meaning (documented for analysts).
READS_COLUMNS = {
    "study": "reader study name",
    "reader": "reader username",
    "case_key": "case identifier within the study",
    "study_instance_uid": "DICOM StudyInstanceUID (0020,000D) of the case",
    "case_label": "normal / abnormal label of the case, if known",
    "position": "position of the case in the reader's worklist (1-based)",
    "practice": "true for a practice case (read first by every reader): not a counted read, leave it out of analyses",
    "arm": "arm code (starting condition)",
    "draft_source": "who or what wrote the starting draft",
    "draft_is_sample": "true for demo sample drafts",
    "status": "new / in_progress / submitted",
    "opened_at": "first open, UTC ISO 8601",
    "submitted_at": "submission, UTC ISO 8601",
    "active_seconds": "seconds the case was open, visible and not idle",
    "wall_seconds": "seconds from first open to submission",
    "draft_text": "starting text shown to the reader",
    "final_text": "submitted report",
    "chars_changed": "Levenshtein distance (characters) from draft_text to final_text",
    "n_autosaves": "number of stored text versions",
}
