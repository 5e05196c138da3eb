"""RaTEScore: entity-aware similarity of two radiology reports, loaded from a local folder.

Source: Zhao et al., "RaTEScore: A Metric for Radiology Report Generation" (EMNLP 2024), and its reference package
``RaTEScore`` 0.6.0 (PyPI; github.com/Angelakeke/RaTEScore, ``scorer.py``, ``score.py``, ``utils.py``), which the
paper's user study used for template use (section 2.4). The method, as the package computes it:

1. Each report is split into sentences; a token-classification NER model (RaTE-NER, DeBERTa-v2) tags every token with
   a BIO label of one of five entity types (:data:`ENTITY_TYPES`); B/I runs become entities (text, type).
2. Every entity text is embedded by a sentence encoder (BioLORD-2023-C): the last hidden state of the first token,
   inputs truncated to 30 tokens.
3. For each entity of report A, the entity of report B with the highest cosine similarity is its match; the directed
   score is the mean of those cosines weighted by the affinity of the (A type, B type) pair
   (:data:`AFFINITY`, the package's default "long" matrix), a match between a negated and a positive type
   (:data:`NEGATION_PAIRS`) being further multiplied by :data:`NEGATION_WEIGHT` in the numerator only.
4. RaTEScore is the harmonic mean of the two directed scores, so it is symmetric in its two reports; 0.5 when either
   report has no entity (:data:`NO_ENTITY_SCORE`).

The package itself cannot be used as a library here: it imports medspaCy at import time without declaring it, and
medspaCy 1.3 needs spaCy < 3.8 (we pin 3.8.18). Differences from the package, all documented:
sentences are split by spaCy's rule-based ``sentencizer`` (the package uses medspaCy's PyRuSH); B/I runs are grouped by
transformers' token-classification pipeline with ``aggregation_strategy="simple"`` (a B tag starts an entity, an I tag
of the same type continues it; the package's own loop differs only for an I tag of another type); cosines are clipped
to [0, 1] so that every score lies in [0, 1] (the package leaves negative cosines, which BioLORD rarely produces).

Folder layout (:func:`load_ratescore`): ``<folder>/ner`` holds the NER model and its tokenizer (e.g. a local copy of
``Angelakeke/RaTE-NER-Deberta``), ``<folder>/encoder`` the encoder and its tokenizer (e.g. of
``FremyCompany/BioLORD-2023-C``). Nothing is fetched from a hub (``local_files_only=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import spacy
import torch
import torch.nn.functional as F
from transformers import (AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer, PreTrainedModel,
                          PreTrainedTokenizerBase, TokenClassificationPipeline, pipeline)

ENTITY_TYPES = ("ABNORMALITY", "NON-ABNORMALITY", "DISEASE", "NON-DISEASE", "ANATOMY")

# (type of the entity being matched, type of its best match) -> weight: the package's DEFAULT_MATRIX_LONG.
AFFINITY: dict[tuple[str, str], float] = {
    ("ABNORMALITY", "ABNORMALITY"): 0.4276119164393705, ("ABNORMALITY", "ANATOMY"): 0.6240929990607657,
    ("ABNORMALITY", "DISEASE"): 0.0034478181112993847, ("ABNORMALITY", "NON-ABNORMALITY"): 0.5431049700217344,
    ("ABNORMALITY", "NON-DISEASE"): 0.27005425386213877, ("ANATOMY", "ABNORMALITY"): 0.7487824274337533,
    ("ANATOMY", "ANATOMY"): 0.2856134859160784, ("ANATOMY", "DISEASE"): 0.4592143222158069,
    ("ANATOMY", "NON-ABNORMALITY"): 0.02097055139911715, ("ANATOMY", "NON-DISEASE"): 0.00013736314126696204,
    ("DISEASE", "ABNORMALITY"): 0.8396510075734789, ("DISEASE", "ANATOMY"): 0.9950209388542061,
    ("DISEASE", "DISEASE"): 0.8460555030578727, ("DISEASE", "NON-ABNORMALITY"): 0.9820689020512646,
    ("DISEASE", "NON-DISEASE"): 0.3789136708096537, ("NON-ABNORMALITY", "ABNORMALITY"): 0.16546764653692908,
    ("NON-ABNORMALITY", "ANATOMY"): 0.018670610691852826, ("NON-ABNORMALITY", "DISEASE"): 0.719397354576018,
    ("NON-ABNORMALITY", "NON-ABNORMALITY"): 0.0009357166071730684,
    ("NON-ABNORMALITY", "NON-DISEASE"): 0.0927333564267591, ("NON-DISEASE", "ABNORMALITY"): 0.7759420231214385,
    ("NON-DISEASE", "ANATOMY"): 0.1839139293714062, ("NON-DISEASE", "DISEASE"): 0.10073046076318157,
    ("NON-DISEASE", "NON-ABNORMALITY"): 0.03860183811876373, ("NON-DISEASE", "NON-DISEASE"): 0.34065681486566446,
}
NEGATION_WEIGHT = 0.8716553966489615
NEGATION_PAIRS = frozenset({
    ("NON-DISEASE", "DISEASE"), ("NON-ABNORMALITY", "ABNORMALITY"), ("DISEASE", "NON-DISEASE"),
    ("ABNORMALITY", "NON-ABNORMALITY"), ("NON-DISEASE", "ABNORMALITY"), ("NON-ABNORMALITY", "DISEASE"),
    ("DISEASE", "NON-ABNORMALITY"), ("ABNORMALITY", "NON-DISEASE"),
})
NO_ENTITY_SCORE = 0.5
NER_FOLDER = "ner"
ENCODER_FOLDER = "encoder"
ENCODER_MAX_TOKENS = 30
NER_MAX_TOKENS = 512


@dataclass(frozen=True)
class Entity:
    """One entity found by the NER model: its text (decoded tokens) and one of :data:`ENTITY_TYPES`."""

    text: str
    type: str


def directed_score(source: torch.Tensor, target: torch.Tensor, source_types: Sequence[str],
                   target_types: Sequence[str]) -> float:
    """Affinity-weighted mean best-match cosine from ``source`` entities to ``target`` entities (package ``compute``).

    Args:
        source: (N, E) float embeddings of the N source entities, N >= 1.
        target: (M, E) float embeddings of the M target entities, M >= 1.
        source_types, target_types: N and M entity types from :data:`ENTITY_TYPES`.

    Returns:
        sum_i cos_i * w_i * n_i / sum_i w_i in [0, 1], with cos_i the clipped cosine of source entity i with its best
        target match j, w_i = AFFINITY[(type_i, type_j)], n_i = NEGATION_WEIGHT for a negation pair else 1;
        0.0 when every weight is 0.
    """
    cosines = F.normalize(source.float(), dim=1) @ F.normalize(target.float(), dim=1).T
    best, match = cosines.max(dim=1)
    numerator = denominator = 0.0
    for cosine, i, j in zip(best.clamp(0.0, 1.0).tolist(), range(len(source_types)), match.tolist()):
        pair = (source_types[i], target_types[j])
        weight = AFFINITY[pair]
        numerator += cosine * weight * (NEGATION_WEIGHT if pair in NEGATION_PAIRS else 1.0)
        denominator += weight
    return numerator / denominator if denominator else 0.0


class RaTEScorer:
    """RaTEScore with a NER model and an entity encoder loaded once (see the module docstring for the method).

    Build it with :func:`load_ratescore`, which checks the folder. ``name`` is ``"RaTEScore (<folder>)"``.
    """

    def __init__(self, folder: Path, ner: TokenClassificationPipeline, encoder: PreTrainedModel,
                 encoder_tokenizer: PreTrainedTokenizerBase, batch_size: int) -> None:
        self.folder = folder
        self.name = f"RaTEScore ({folder})"
        self._ner = ner
        self._encoder = encoder
        self._encoder_tokenizer = encoder_tokenizer
        self._batch_size = batch_size
        self._sentencizer = spacy.blank("en")
        self._sentencizer.add_pipe("sentencizer")

    def sentences(self, report: str) -> list[str]:
        """Sentences of ``report`` with at least 3 characters and one word (package ``sentence_split``)."""
        sentences = (span.text.strip() for span in self._sentencizer(report).sents)
        return [s for s in sentences if len(s) >= 3 and s.split()]

    def entities(self, reports: Sequence[str]) -> list[list[Entity]]:
        """The entities of each report, in reading order (package ``run_ner``)."""
        sentences = [self.sentences(report) for report in reports]
        flat = [s for report in sentences for s in report]
        tagged = iter(self._ner(flat, batch_size=self._batch_size) if flat else [])
        found = []
        for report in sentences:
            groups = [group for _ in report for group in next(tagged)]
            found.append([Entity(g["word"].strip(), g["entity_group"]) for g in groups if g["word"].strip()])
        return found

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), E) float32 CPU embeddings: the encoder's first-token last hidden state, 30 tokens at most."""
        chunks = []
        for start in range(0, len(texts), self._batch_size):
            encoded = self._encoder_tokenizer(list(texts[start:start + self._batch_size]), truncation=True,
                                              padding=True, max_length=ENCODER_MAX_TOKENS, return_tensors="pt")
            encoded = encoded.to(self._encoder.device)
            chunks.append(self._encoder(**encoded).last_hidden_state[:, 0, :].float().cpu())
        return torch.cat(chunks)

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> list[float]:
        """RaTEScore of each (candidate, reference) pair, each in [0, 1]; symmetric in the two reports.

        Each distinct report is tagged once and each distinct entity text embedded once, both in sorted order, so
        that the batches (and the float rounding of near-tied matches) do not depend on the order of the pairs.

        Raises:
            TypeError: a report is not a string.
            ValueError: the two sequences differ in length.
        """
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
        reports = list(candidates) + list(references)
        bad = [type(r).__name__ for r in reports if not isinstance(r, str)]
        if bad:
            raise TypeError(f"reports must be str, got {', '.join(sorted(set(bad)))}")
        distinct = sorted(set(reports))
        found = dict(zip(distinct, self.entities(distinct)))
        texts = sorted({e.text for entities in found.values() for e in entities})
        row = {text: i for i, text in enumerate(texts)}
        embeddings = self.embed(texts) if texts else torch.empty(0, 0)
        scores = []
        for candidate, reference in zip(candidates, references):
            a, b = found[candidate], found[reference]
            if not a or not b:
                scores.append(NO_ENTITY_SCORE)
                continue
            ea, eb = embeddings[[row[e.text] for e in a]], embeddings[[row[e.text] for e in b]]
            ta, tb = [e.type for e in a], [e.type for e in b]
            forward, backward = directed_score(eb, ea, tb, ta), directed_score(ea, eb, ta, tb)
            scores.append(2 * forward * backward / (forward + backward) if forward + backward else 0.0)
        return scores


def _check_ner_labels(folder: Path, id2label: dict[int, str]) -> None:
    allowed = {"O"} | {f"{bio}-{t}" for bio in "BI" for t in ENTITY_TYPES}
    bad = sorted(set(id2label.values()) - allowed)
    if bad:
        raise ValueError(f"RaTEScore NER model in {folder} has labels {bad} outside O and B-/I- of {ENTITY_TYPES}")


def _load(what: str, loader, path: Path):
    try:
        return loader(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"RaTEScore {what} in {path} cannot be loaded: {error}") from error


def load_ratescore(folder: Path | str, batch_size: int = 16, device: Optional[str] = None) -> RaTEScorer:
    """Load the RaTEScore models from ``folder`` (``ner/`` and ``encoder/``, see the module docstring), offline.

    Args:
        folder: local folder; never a hub name.
        batch_size: sentences (NER) or entity texts (encoder) per forward pass.
        device: torch device; "cuda" when available, else "cpu", when None.

    Raises:
        ValueError: the folder or a sub-folder is missing, lacks ``config.json``, the NER model is not a
            token-classification model with RaTE-NER labels, or a model or tokenizer cannot be loaded (the message
            names the folder and the cause).
    """
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"RaTEScore folder {folder} does not exist or is not a folder")
    for sub in (NER_FOLDER, ENCODER_FOLDER):
        if not (folder / sub / "config.json").is_file():
            raise ValueError(f"RaTEScore folder {folder} lacks {sub}/config.json (expected {NER_FOLDER}/ with the NER "
                             f"model and {ENCODER_FOLDER}/ with the entity encoder, each with its tokenizer)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ner_dir, encoder_dir = folder / NER_FOLDER, folder / ENCODER_FOLDER
    config = _load("NER config", AutoConfig.from_pretrained, ner_dir)
    _check_ner_labels(ner_dir, config.id2label)
    ner_model = _load("NER model", AutoModelForTokenClassification.from_pretrained, ner_dir).eval()
    ner_tokenizer = _load("NER tokenizer", AutoTokenizer.from_pretrained, ner_dir)
    encoder = _load("encoder model", AutoModel.from_pretrained, encoder_dir).eval().to(device)
    encoder_tokenizer = _load("encoder tokenizer", AutoTokenizer.from_pretrained, encoder_dir)
    if not ner_tokenizer.is_fast:
        raise ValueError(f"RaTEScore NER tokenizer in {ner_dir} is not a fast tokenizer (tokenizer.json needed)")
    ner_tokenizer.model_max_length = min(ner_tokenizer.model_max_length, NER_MAX_TOKENS)
    ner = pipeline("token-classification", model=ner_model, tokenizer=ner_tokenizer, aggregation_strategy="simple",
                   device=device)
    return RaTEScorer(folder, ner, encoder, encoder_tokenizer, batch_size)
