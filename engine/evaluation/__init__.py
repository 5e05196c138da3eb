"""Evaluation of MedVersa answers per task (paper section 4.6, "Evaluation metrics").

- :mod:`engine.evaluation.text`: report-generation metrics that need no weights (BLEU-4, ROUGE-L); the same ROUGE-L
  serves :mod:`analysis.similarity` (template use).
- :mod:`engine.evaluation.labels`: accuracy and macro F1 for classification and VQA answers.
- :mod:`engine.evaluation.geometry`: IoU of normalized xyxy boxes, Dice of binary masks.
- :mod:`engine.evaluation.model_metrics`: metrics that need model weights (BERTScore, CheXbert, RadGraph F1, RadCliQ),
  loaded from local folders only.
- :mod:`engine.evaluation.scoring`: scores per task with 95% bootstrap CIs (1,000 resamples) and the backend that
  produced each number.

``python -m engine.evaluate`` generates answers for a manifest and writes these scores.
"""
