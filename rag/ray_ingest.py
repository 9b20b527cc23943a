"""`rag index --engine ray`: new and changed documents read, cleaned, chunked and embedded with Ray Data.

This process lists and hashes the corpus files exactly as the local path does (``scan_corpus``), so the
incremental decision is the same: only files whose content the index does not hold go to Ray. One `map_batches`
stage reads, cleans and chunks them with the local path's own functions (``read_pending``, ``classify``,
``chunk_document``: the same chunk ids and offsets); a second embeds the chunk texts in an actor pool, each actor
loading the encoder once. The rows come back sorted by doc_id and chunk order, and rag/indexer.py writes the
generation from them as it does for the local path. A failure before that leaves the live generation as it was.

On a cluster every node needs this package (and the embedder's package) installed and the corpus files at the
same paths (a shared file system); docs/scale.md.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunking import chunk_document
from rag.clean import classify
from rag.config import ChunkSettings, EmbedSettings, IndexSettings, IngestSettings, Settings
from rag.errors import EngineError, RagError
from rag.ingest import Corpus, PendingFile, SourceFile, read_pending, scan_corpus
from rag.types import Chunk, Document, IngestProblem

log = logging.getLogger(__name__)

# (stage, done, total or None), as rag.indexer.IndexProgress.
Progress = Callable[[str, int, int | None], None]

_INSTALL_HINT = "pip install 'ray[data]'"  # the `ray` extra of rag: pip install -e '.[ray]'
# A local instance: small, no dashboard. The object store holds the batches in flight (texts and vectors), a few
# MB at a time; Ray's default (30% of memory) would claim 7 GB here for nothing.
_OBJECT_STORE_BYTES = 300 * 1024 * 1024
_CONNECT_TIMEOUT = 5.0  # seconds to reach --address before saying it cannot be reached
_FILES_PER_BATCH = 8  # files per read-and-chunk call
# CPUs Ray reserves for each encoder actor, and the onnxruntime threads it runs: one, so that the workers a node
# is given (its CPUs) are as many threads, not each a thread per core. Same-sized read stage: Ray fuses the two.
_ACTOR_CPUS = 1
_BATCHES_PER_CALL = 4  # embed batches (embed.batch_size chunks) per actor call: fewer round trips, same vectors


@dataclass(frozen=True)
class RayIngested:
    """What the Ray run gives the indexer."""

    corpus: Corpus  # every document in doc_id order, and the problems, as read_corpus gives them
    fresh: dict[str, tuple[list[Chunk], np.ndarray]]  # each document read on Ray: its chunks and their vectors
    seconds: float  # wall time on Ray: start-up, reading, chunking, embedding


def read_chunk_embed(
    paths: list[str],
    settings: Settings,
    known: Mapping[str, Document] | None = None,
    progress: Progress | None = None,
    admit: Callable[[set[str]], None] | None = None,
) -> RayIngested:
    """Read the corpus at ``paths``; the files ``known`` does not hold are read, chunked and embedded on Ray.

    ``admit`` is given the doc_ids found, before anything is sent to Ray, and may refuse the run by raising."""
    problems: list[IngestProblem] = []
    # Scan problems and entries in the order the local path reports them: a pending file's own problems follow it.
    slots: list[Document | PendingFile | IngestProblem] = []
    on_file = (lambda done, total: progress("read", done, total)) if progress else None
    for entry in scan_corpus(paths, settings.ingest, problems, known, on_file):
        slots.extend(problems)
        problems.clear()
        slots.append(entry)
    slots.extend(problems)
    pending = [s for s in slots if isinstance(s, PendingFile)]
    if admit is not None:
        admit({s.source.doc_id for s in pending} | {s.doc_id for s in slots if isinstance(s, Document)})
    started = time.perf_counter()
    rows = _run(pending, settings, progress) if pending else {}
    seconds = time.perf_counter() - started if pending else 0.0
    documents: list[Document] = []
    found: list[IngestProblem] = []
    fresh: dict[str, tuple[list[Chunk], np.ndarray]] = {}
    for slot in slots:
        if isinstance(slot, IngestProblem):
            found.append(slot)
            continue
        if isinstance(slot, Document):
            documents.append(slot)
            continue
        doc, doc_problems, chunks, vectors = rows[slot.source.doc_id]
        found.extend(doc_problems)
        if doc is not None:
            documents.append(doc)
            fresh[doc.doc_id] = (chunks, vectors)
    for problem in found:
        log.warning("%s: %s", problem.path, problem.message)
    return RayIngested(Corpus(documents=documents, problems=found), fresh, seconds)


_Rows = dict[str, tuple[Document | None, list[IngestProblem], list[Chunk], np.ndarray]]


def _run(pending: list[PendingFile], settings: Settings, progress: Progress | None) -> _Rows:
    """Read, chunk and embed ``pending`` on Ray: per doc_id the Document (None if it could not be read), its
    problems, its chunks in order and their vectors."""
    if progress:
        progress("start", 0, None)
    with ray_session(settings.index), _translated_errors():
        import ray.data

        items = [{"path": str(p.source.path), "doc_id": p.source.doc_id, "sha256": p.sha256} for p in pending]
        # Blocks of a batch of files each, spread over the actors; no more actors than blocks (one changed file
        # starts one encoder).
        blocks = -(-len(items) // _FILES_PER_BATCH)
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            partial(_read_and_chunk, ingest=settings.ingest, chunk=settings.chunk),
            batch_size=_FILES_PER_BATCH,
            batch_format="numpy",
            num_cpus=_ACTOR_CPUS,
        )
        dataset = dataset.map_batches(
            ChunkEncoder,
            fn_constructor_kwargs={"embed": replace(settings.embed, threads=_ACTOR_CPUS)},
            batch_size=settings.embed.batch_size * _BATCHES_PER_CALL,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(settings.index.ray_workers, blocks)),
            num_cpus=_ACTOR_CPUS,
        )
        parts: list[dict[str, np.ndarray]] = []
        embedded = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            parts.append(batch)
            embedded += int(np.count_nonzero(batch["seq"] >= 0))
            if progress:
                progress("embed", embedded, None)
    return _assemble(parts)


def _assemble(parts: list[dict[str, np.ndarray]]) -> _Rows:
    """The rows Ray returned (in no particular order) as per-document results, chunks in their order."""
    if not parts:
        return {}
    doc_ids = np.concatenate([p["doc_id"] for p in parts]).astype(str)
    seqs = np.concatenate([p["seq"] for p in parts]).astype(np.int64)
    records = np.concatenate([p["record"] for p in parts])
    vectors = np.concatenate([p["vector"] for p in parts]).astype(np.float32, copy=False)
    documents: dict[str, tuple[Document | None, list[IngestProblem]]] = {}
    chunks: dict[str, list[Chunk]] = {}
    rows: dict[str, list[int]] = {}
    # By doc_id, then the document's own row (seq -1) before its chunks in order.
    for row in np.lexsort((seqs, doc_ids)).tolist():
        doc_id, record = str(doc_ids[row]), json.loads(str(records[row]))
        if seqs[row] < 0:
            doc = Document(**record["document"]) if record["document"] is not None else None
            documents[doc_id] = (doc, [IngestProblem(**p) for p in record["problems"]])
            chunks[doc_id], rows[doc_id] = [], []
            continue
        text = documents[doc_id][0].text  # type: ignore[union-attr]  # chunks come only from a document read
        start, end = record["start"], record["end"]
        chunks[doc_id].append(Chunk(record["chunk_id"], doc_id, start, end, record["section"], text[start:end]))
        rows[doc_id].append(row)
    return {
        doc_id: (doc, problems, chunks[doc_id], np.ascontiguousarray(vectors[rows[doc_id]]))
        for doc_id, (doc, problems) in documents.items()
    }


def _read_and_chunk(
    batch: dict[str, np.ndarray], ingest: IngestSettings, chunk: ChunkSettings
) -> dict[str, np.ndarray]:
    """A Ray stage: read each file and cut it into chunks; one row for the document (seq -1), one per chunk."""
    doc_ids: list[str] = []
    seqs: list[int] = []
    records: list[str] = []
    texts: list[str] = []
    for path, doc_id, sha in zip(batch["path"], batch["doc_id"], batch["sha256"], strict=True):
        pending = PendingFile(SourceFile(Path(str(path)), str(doc_id)), str(sha))
        doc, problems = read_pending(pending, ingest)
        record = {"document": asdict(doc) if doc else None, "problems": [asdict(p) for p in problems]}
        doc_ids.append(str(doc_id))
        seqs.append(-1)
        records.append(json.dumps(record))
        texts.append("")
        if doc is None:
            continue
        for seq, c in enumerate(chunk_document(doc, classify(doc.text), chunk)):
            doc_ids.append(c.doc_id)
            seqs.append(seq)
            records.append(json.dumps({"chunk_id": c.chunk_id, "start": c.start, "end": c.end, "section": c.section}))
            texts.append(c.text)
    return {
        "doc_id": np.array(doc_ids, dtype=object),
        "seq": np.array(seqs, dtype=np.int64),
        "record": np.array(records, dtype=object),
        "text": np.array(texts, dtype=object),
    }


class ChunkEncoder:
    """An actor of the pool: loads the encoder once, then embeds the chunk rows of each batch it is given."""

    def __init__(self, embed: EmbedSettings) -> None:
        from rag.embedders import load_embedder

        self.embedder = load_embedder(embed)
        self.batch_size = embed.batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        is_chunk = batch["seq"] >= 0
        vectors = np.zeros((len(is_chunk), self.embedder.dim), dtype=np.float32)
        texts = [str(t) for t in batch["text"][is_chunk]]
        if texts:
            vectors[is_chunk] = self.embedder.encode(texts, batch_size=self.batch_size)
        return {"doc_id": batch["doc_id"], "seq": batch["seq"], "record": batch["record"], "vector": vectors}


@contextmanager
def ray_session(settings: IndexSettings) -> Iterator[None]:
    """Ray for one run: the one this process is already connected to, else a local instance (no
    ``index.ray_address``) or the cluster at that address. Disconnected (a local instance stopped) at the end
    when it was started here."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise EngineError(
            f"index.engine = ray needs Ray Data, which is not installed ({exc}); run `{_INSTALL_HINT}`, "
            "or index with --engine local"
        ) from exc
    address = settings.ray_address.strip()
    endpoint = _endpoint(address) if address else None
    with _quiet_ray_logs():
        if ray.is_initialized():
            _configure_data(ray.data.DataContext.get_current())
            yield
            return
        if endpoint is not None:
            _check_reachable(address, *endpoint)
        # Ray reports usage statistics to its makers unless told not to; this machine is offline and the corpus
        # private. Read by ray.init in this process (the head it starts inherits it); a user's own choice stands.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ray.init(**init_arguments(address, settings.ray_workers))
        except ConnectionError as exc:
            raise EngineError(
                f"cannot connect to the Ray cluster at {address or 'a new local instance'} ({exc}); "
                "check --address (RAG_INDEX_RAY_ADDRESS), or index with --engine local"
            ) from exc
        try:
            _configure_data(ray.data.DataContext.get_current())
            yield
        finally:
            ray.shutdown()


def init_arguments(address: str, workers: int) -> dict[str, Any]:
    """``ray.init`` keywords: a cluster at ``address``, or with none a small local instance of ``workers``
    CPUs without dashboard. Workers read the model from the local cache, never a hub; a local instance's
    workers import rag from where this process does."""
    env = {"HF_HUB_OFFLINE": "1"}
    quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": False, "ignore_reinit_error": True}
    if address:
        return {"address": address, "runtime_env": {"env_vars": env}, **quiet}
    root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    if "RAG_CACHE_DIR" in os.environ:  # where the ONNX export is cached
        env["RAG_CACHE_DIR"] = os.environ["RAG_CACHE_DIR"]
    return {
        "num_cpus": workers,
        "include_dashboard": False,
        "object_store_memory": _OBJECT_STORE_BYTES,
        "runtime_env": {"env_vars": {**env, "PYTHONPATH": python_path}},
        **quiet,
    }


def _endpoint(address: str) -> tuple[str, int] | None:
    """The host and port of ``address`` to check before connecting; None for ``auto`` (Ray resolves it, and fails
    at once when no cluster runs on this machine)."""
    if address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(
            f"--address {address!r} is not auto, ray://HOST:PORT (Ray Client, port 10001 by default) or "
            "HOST:PORT (the head node's GCS, 6379); fix it, or leave it out to start a local Ray instance"
        )
    return host, int(port)


def _check_reachable(address: str, host: str, port: int) -> None:
    """Fail at once, naming the fix, when nothing listens at ``address``: Ray itself waits minutes on a GCS
    address and 30 s on a ray:// one before giving up."""
    try:
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise EngineError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it (`ray start --head`) "
            "or fix --address (RAG_INDEX_RAY_ADDRESS), or leave it out to start a local Ray instance"
        ) from exc


def _configure_data(context: Any) -> None:
    """No progress bars or execution reports on the console: `rag index` shows its own progress."""
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False


@contextmanager
def _quiet_ray_logs() -> Iterator[None]:
    """Ray's own notices (start-up, token, execution plans) off the console for the run; errors still show."""
    loggers = [logging.getLogger(name) for name in ("ray", "ray.data")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextmanager
def _translated_errors() -> Iterator[None]:
    """A RagError raised inside a Ray worker (the embedder cannot be loaded, say) reaches the user as itself, one
    line, not wrapped in Ray's remote traceback."""
    try:
        yield
    except RagError:
        raise
    except Exception as exc:
        cause = _rag_cause(exc)
        if cause is None:
            raise
        raise type(cause)(str(cause)) from exc


def _rag_cause(exc: BaseException) -> RagError | None:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RagError) and type(current).__module__ == "rag.errors":
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return None
