"""Select compact evidence for the model: the sentences of the retrieved chunks most relevant to the question.

Prompt tokens dominate latency on a CPU, so instead of pasting whole chunks we keep the best sentences
within a character budget, drop near-duplicates, and merge sentences that stand next to each other in
a document into one numbered passage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rag.chunking import sentence_spans
from rag.injection import is_instruction
from rag.lexical import tokenize
from rag.types import Document, Embedder, Hit

_MIN_SENTENCE_CHARS = 20  # "§§§", "Via TASS", bylines: not evidence on their own


@dataclass(frozen=True)
class Sentence:
    """One evidence sentence ``doc.text[start:end]``, with the vector used to match answer sentences to it."""

    doc_id: str
    start: int
    end: int
    text: str
    section: str
    vector: np.ndarray
    score: float


@dataclass(frozen=True)
class Passage:
    """A numbered passage the model sees: adjacent selected sentences of one document."""

    n: int
    doc_id: str
    title: str
    section: str
    start: int
    end: int
    text: str
    sentences: tuple[Sentence, ...]
    hit: Hit
    page: int | None = None  # the page the passage starts on, for a paged format (PDF)

    def label(self) -> str:
        kind = "reader comment" if self.section == "comments" else "article"
        return f"[{self.n}] ({self.title}; {kind}) {' '.join(self.text.split())}"


def _is_statement(text: str, start: int, end: int) -> bool:
    """A sentence that states something: long enough, and ended like a sentence or long (not a heading or caption)."""
    if end - start < _MIN_SENTENCE_CHARS:
        return False
    return text[end - 1] in '.!?"”’)…' or len(text[start:end].split()) >= 12


def _normalise(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def lexical_overlap(query_tokens: set[str], text: str) -> float:
    """The share of ``query_tokens`` (stemmed, no stop words) that occur in ``text``."""
    if not query_tokens:
        return 0.0
    return len(query_tokens & set(tokenize([text])[0])) / len(query_tokens)


def select_evidence(
    question: str,
    hits: list[Hit],
    documents: Mapping[str, Document],
    embedder: Embedder,
    budget_chars: int,
    parts: list[str] | None = None,
    neighbour_weight: float = 0.0,
) -> list[Passage]:
    """The best sentences of ``hits`` for ``question`` within ``budget_chars``, grouped into numbered passages.

    ``parts`` are the sub-questions of a two-part question: the best sentence for each is kept first, so
    the model sees evidence for every part, then the rest of the budget goes to the best for any of them.
    ``neighbour_weight``: the share of a sentence's score its neighbours inherit (``answer.neighbour_weight``).
    """
    candidates: list[tuple[Hit, int, int]] = []
    for hit in hits:
        text = documents[hit.chunk.doc_id].text
        for start, end in sentence_spans(text, hit.chunk.start, hit.chunk.end):
            if _is_statement(text, start, end) and not is_instruction(text[start:end]):
                candidates.append((hit, start, end))
    if not candidates:
        return []
    texts = [documents[h.chunk.doc_id].text[s:e] for h, s, e in candidates]
    queries = [question, *(parts or [])]
    encoded = embedder.encode([*queries, *texts])
    vectors = encoded[len(queries) :]
    sentence_tokens = [set(tokenize([t])[0]) for t in texts]

    per_query = [
        _relevance(encoded[q], queries[q], vectors, sentence_tokens, candidates, neighbour_weight)
        for q in range(len(queries))
    ]
    scores = [max(column) for column in zip(*per_query, strict=True)]
    # First the best sentence of each part, then the best for any.
    order = [int(np.argmax(per_query[q])) for q in range(1, len(queries))]
    order += sorted(range(len(candidates)), key=lambda i: -scores[i])
    chosen: list[int] = []
    seen: set[str] = set()
    used = 0
    for i in order:
        key = _normalise(texts[i])
        if key in seen or any(float(vectors[i] @ vectors[j]) > 0.95 for j in chosen):
            continue  # the same sentence quoted twice (e.g. a comment quoting the article)
        length = len(texts[i])
        if used + length > budget_chars and chosen:
            continue
        chosen.append(i)
        seen.add(key)
        used += length
        if used >= budget_chars:
            break
    return _group(chosen, candidates, texts, vectors, scores, documents)


def _relevance(
    query_vector: np.ndarray,
    query: str,
    vectors: np.ndarray,
    sentence_tokens: list[set[str]],
    candidates: list[tuple[Hit, int, int]],
    neighbour_weight: float,
) -> list[float]:
    """Each candidate's relevance to ``query``: mostly meaning, some exact words (names, numbers), a little of
    the retriever's own ranking."""
    similarity = vectors @ query_vector
    tokens = set(tokenize([query])[0])
    own = [
        0.6 * float(similarity[i])
        + 0.3 * (len(tokens & sentence_tokens[i]) / len(tokens) if tokens else 0.0)
        + 0.1 / candidates[i][0].rank
        for i in range(len(candidates))
    ]
    # A sentence next to a relevant one often holds the answer while its words point elsewhere ("... taken
    # prisoner by the island's despot Isaac Komnenos" after the sentence that names Cyprus): it inherits
    # part of its neighbour's score.
    scores = list(own)
    for i in range(len(candidates)):
        for j in (i - 1, i + 1):
            if 0 <= j < len(candidates) and candidates[j][0] is candidates[i][0]:
                scores[i] = max(scores[i], neighbour_weight * own[j])
    return scores


def _group(
    chosen: list[int],
    candidates: list[tuple[Hit, int, int]],
    texts: list[str],
    vectors: np.ndarray,
    scores: list[float],
    documents: Mapping[str, Document],
) -> list[Passage]:
    """Merge chosen sentences that are adjacent in their document; number passages best first."""
    by_position = sorted(chosen, key=lambda i: (candidates[i][0].chunk.doc_id, candidates[i][1]))
    groups: list[list[int]] = []
    for i in by_position:
        hit, start, _ = candidates[i]
        if groups:
            prev_hit, _, prev_end = candidates[groups[-1][-1]]
            text = documents[hit.chunk.doc_id].text
            gap = text[prev_end:start] if prev_hit.chunk.doc_id == hit.chunk.doc_id and prev_end <= start else None
            if gap is not None and not gap.strip() and prev_hit.chunk.section == hit.chunk.section:
                groups[-1].append(i)
                continue
        groups.append([i])
    groups.sort(key=lambda g: -max(scores[i] for i in g))
    passages = []
    for n, group in enumerate(groups, start=1):
        hit = candidates[group[0]][0]
        doc = documents[hit.chunk.doc_id]
        start, end = candidates[group[0]][1], candidates[group[-1]][2]
        sentences = tuple(
            Sentence(
                doc_id=doc.doc_id,
                start=candidates[i][1],
                end=candidates[i][2],
                text=texts[i],
                section=hit.chunk.section,
                vector=vectors[i],
                score=scores[i],
            )
            for i in group
        )
        passages.append(
            Passage(
                n=n,
                doc_id=doc.doc_id,
                title=doc.title,
                section=hit.chunk.section,
                start=start,
                end=end,
                text=doc.text[start:end],
                sentences=sentences,
                hit=hit,
                page=doc.page_at(start),
            )
        )
    return passages
