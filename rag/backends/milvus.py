"""The index on Milvus (``index.backend = milvus``): each generation's vectors and BM25 weights in a collection.

`rag index` writes the generation's rows into a new collection ``<alias>_g<time_ns>`` (row, chunk_id, doc_id,
section, the 384-d vector, the BM25 weights as a sparse vector), indexes and loads it, and only then writes the
local generation, whose manifest names the collection; after CURRENT is switched it points the alias
(``rag_<index folder>``) at the new collection and drops all but it and the previous one. A failure before
CURRENT drops the new collection: CURRENT and the alias stay on the previous version. A reader searches the
collection its generation's manifest names, not the alias, so the rows it gets always index the chunk table it
loaded, even while an update switches versions; the alias is the live version's name for operators and tools.

BM25: the weights are bm25s's own (the same tokenizer, stemmer, stop words and IDF as the FAISS backend),
stored as a sparse vector and scored by Milvus's sparse inner product with the query's term counts, so BM25 and
hybrid results equal the FAISS backend's. Milvus's own full-text search (``FunctionType.BM25``) works in
Milvus Lite 3.2 too, but its analyzer ignores the stemmer filter and its IDF is per segment, so its ranking
differs from bm25s (docs/scale-milvus.md).

Where (``index.milvus_uri``): empty, a Milvus Lite folder per generation in ``index.dir/milvus/`` (Milvus Lite
allows one process per folder; a writer never opens the one a server reads); a ``.db`` path, one Milvus Lite
folder (one process at a time); ``http(s)://host:port``, a Milvus server or cluster, with ``index.milvus_token``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag import dense
from rag.backends import RowFilter
from rag.config import Settings
from rag.errors import ConfigError, IndexCorruptError, IndexMismatchError, IndexServiceError
from rag.lexical import BM25Index, tokenize
from rag.store import StoredIndex
from rag.types import Chunk

PER_GENERATION = "per-generation"  # the recorded location of a Milvus Lite folder per generation
# Milvus refuses an empty sparse vector; a chunk without BM25 terms (all stop words) carries this dimension,
# which no query holds (bm25s term ids are below the vocabulary size; Milvus allows ids up to 2**32 - 2).
NO_TERMS = 2**32 - 2
# Rows per insert: 1,000 x 384 float32 is 1.5 MB with the sparse weights, far under gRPC's 64 MB messages.
INSERT_BATCH = 1000
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": 0}
CONNECT_TIMEOUT = 10.0  # seconds to reach a Milvus server before saying it cannot be reached
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
_opened_lite: set[str] = set()  # Milvus Lite folders this process serves (the package runs one server per folder)


def alias_name(settings: Settings) -> str:
    """The alias of the live collection: ``index.milvus_alias``, or ``rag_`` and the index folder's name."""
    name = settings.index.milvus_alias or "rag_" + re.sub(r"\W", "_", Path(settings.index.dir).resolve().name)
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"index.milvus_alias = {name!r} is not a Milvus name; use letters, digits and _ (not first a digit)"
        )
    return name


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def recorded_uri(settings: Settings) -> str:
    """What a generation's manifest records as its collection's place: the server URI, the lite path or
    ``per-generation`` (never the token)."""
    uri = settings.index.milvus_uri
    if not uri:
        return PER_GENERATION
    if _is_server(uri):
        return uri
    if not uri.endswith(".db"):
        raise ConfigError(
            f"index.milvus_uri = {uri!r} is neither a Milvus Lite path (ending in .db) nor a server URI "
            "(http://host:19530); fix it, or leave it empty for a Milvus Lite folder per index generation"
        )
    return str(Path(uri).expanduser().resolve())


def _location(root: Path, recorded: str, collection: str) -> str:
    """The URI a client opens for ``collection``, from what the manifest records."""
    return str(root.resolve() / "milvus" / f"{collection}.db") if recorded == PER_GENERATION else recorded


def _quiet() -> None:
    # pymilvus configures its loggers on import and logs every failed call with a traceback at ERROR; milvus
    # Lite logs a locked folder the same way. The failure reaches the user once, as our error.
    # grpc's server logger: Milvus Lite's in-process server logs the RPCs it does not implement (AllocTimestamp,
    # which pymilvus tries before falling back) with a traceback.
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _locked(path: str) -> bool:
    """Whether another process holds Milvus Lite's lock on the folder ``path``."""
    lock = Path(path) / "LOCK"
    if not lock.exists():
        return False
    with lock.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _service_error(uri: str, exc: Exception, *, connecting: bool = False) -> IndexServiceError:
    """A Milvus failure as one line: the problem and the fix."""
    message = str(getattr(exc, "message", "") or exc).strip()[:300]
    code = getattr(exc, "code", None)
    # Milvus Lite failed to start on the folder (the package says only that it did): is another process in it?
    if connecting and not _is_server(uri) and _locked(uri):
        return IndexServiceError(
            f"the Milvus Lite folder {uri} is open in another process (Milvus Lite allows one at a time); stop "
            "that process, or leave index.milvus_uri empty (a folder per index generation, which `rag serve` "
            f"and `rag index` never share), or serve it with `milvus-lite server --data-dir {uri} --host 127.0.0.1` "
            "and set index.milvus_uri = http://127.0.0.1:19530"
        )
    lowered = message.lower()
    if code == 1800 or any(w in lowered for w in ("auth", "token", "password", "permission", "credential")):
        return IndexServiceError(
            f"Milvus at {uri} refused the credentials ({message}); set index.milvus_token "
            '(RAG_INDEX_MILVUS_TOKEN) to "user:password" or an API key'
        )
    if code == 2 or "connect" in lowered or "unavailable" in lowered:
        return IndexServiceError(
            f"cannot reach Milvus at {uri} ({message}); start it, or fix index.milvus_uri (RAG_INDEX_MILVUS_URI)"
        )
    return IndexServiceError(f"Milvus at {uri} failed: {message}")


@contextlib.contextmanager
def _calls(uri: str) -> Iterator[None]:
    """Milvus client calls inside: their exceptions become ``IndexServiceError``."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        raise _service_error(uri, exc) from exc


def connect(uri: str, token: str) -> Any:
    """A ``MilvusClient`` for ``uri`` (a server, or a Milvus Lite folder started in this process)."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise IndexServiceError(
            "index.backend = milvus needs pymilvus and milvus-lite; run `pip install -e '.[milvus]'` "
            "(or `pip install pymilvus milvus-lite`), or set index.backend = faiss"
        ) from exc
    from pymilvus.exceptions import MilvusException

    _quiet()
    # pymilvus pings every 10 s even when idle; Milvus Lite's in-process gRPC server (grpc's default policy)
    # answers an idle server's pings with GOAWAY "too_many_pings", which grpc's C core logs on stderr: measured
    # during the 100k benchmark. A connection to this process's own server needs no keepalive.
    options = {} if _is_server(uri) else {"grpc_options": LITE_GRPC_OPTIONS}
    try:
        client = MilvusClient(uri=uri, token=token, timeout=CONNECT_TIMEOUT, **options)
    except MilvusException as exc:
        raise _service_error(uri, exc, connecting=True) from exc
    if not _is_server(uri):
        _opened_lite.add(uri)
    return client


def release_lite(uri: str) -> None:
    """Stop this process's Milvus Lite server of the folder ``uri`` (its lock and memory go with it)."""
    if uri in _opened_lite:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)
        _opened_lite.discard(uri)


def check_reachable(settings: Settings) -> None:
    """Fail before any work when the configured Milvus cannot be written (unreachable, refused, locked)."""
    recorded = recorded_uri(settings)
    if recorded == PER_GENERATION:
        return  # a new folder per generation: nothing else holds it
    client = connect(recorded, settings.index.milvus_token)
    with _calls(recorded):
        client.list_collections()


def bm25_rows(bm25: BM25Index, n: int) -> list[dict[int, float]]:
    """Each chunk's BM25 weights as {term id: weight}: bm25s's precomputed per-term scores (IDF included), so
    a query's sparse inner product with its term counts is bm25s's score."""
    scores = bm25.retriever.scores
    indptr = np.asarray(scores["indptr"])
    docs = np.asarray(scores["indices"])
    weights = np.asarray(scores["data"], dtype=np.float32)
    terms = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))  # the matrix is stored term by term
    order = np.argsort(docs, kind="stable")
    docs, terms, weights = docs[order], terms[order], weights[order]
    bounds = np.searchsorted(docs, np.arange(n + 1))
    rows = []
    for row in range(n):
        a, b = bounds[row], bounds[row + 1]
        kept = weights[a:b] > 0
        pairs = dict(zip(terms[a:b][kept].tolist(), weights[a:b][kept].tolist(), strict=True))
        rows.append(pairs or {NO_TERMS: 1.0})
    return rows


def query_terms(bm25: BM25Index, query: str) -> dict[int, float]:
    """The query's known terms and their counts (bm25s counts a repeated query term each time)."""
    vocab = bm25.retriever.vocab_dict
    return {int(t): float(c) for t, c in Counter(vocab[w] for w in tokenize([query])[0] if w in vocab).items()}


def _dense_index(n: int, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Milvus vector index for ``n`` rows, the same kind FAISS would use (flat, HNSW, IVF), and its search
    parameters."""
    s = settings.index
    kind = dense.choose_kind(n, s)
    if kind == "hnsw":
        return (
            {"index_type": "HNSW", "params": {"M": s.hnsw_m, "efConstruction": s.hnsw_ef_construction}},
            {"kind": kind, "ef": s.hnsw_ef_search},
        )
    if kind == "ivf":
        nlist = dense.ivf_lists(n, s)
        search = {"kind": kind, "nprobe": dense.ivf_probes(nlist, s)}
        return {"index_type": "IVF_FLAT", "params": {"nlist": nlist}}, search
    return {"index_type": "FLAT", "params": {}}, {"kind": kind}


def _create(client: Any, collection: str, dim: int) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("chunk_id", DataType.VARCHAR, max_length=128)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
    schema.add_field("section", DataType.VARCHAR, max_length=32)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
    client.create_collection(collection, schema=schema)


@dataclass
class Publication:
    """A generation's collection, written and loaded but not yet live."""

    settings: Settings
    root: Path
    client: Any
    uri: str
    record: dict[str, Any]
    previous: str | None
    problems: list[str] = field(default_factory=list)

    def commit(self) -> None:
        """After CURRENT names the new generation: point the alias at its collection, drop older ones."""
        alias, collection = self.record["alias"], self.record["collection"]
        try:
            with _calls(self.uri):
                if alias in self.client.list_aliases().get("aliases", []):
                    self.client.alter_alias(collection, alias)
                else:
                    self.client.create_alias(collection, alias)
                self._drop_older()
        except IndexServiceError as exc:  # the new version is live already; the next `rag index` sets the alias
            self.problems.append(f"the new index is live, but the alias {alias} was not switched: {exc}")
        finally:
            self.close()

    def abort(self) -> None:
        """The update failed: drop the new collection; CURRENT and the alias still name the previous one."""
        with contextlib.suppress(Exception):  # already failing: the first error is the one to report
            self.client.drop_collection(self.record["collection"])
        self.close()
        if self.record["uri"] == PER_GENERATION:
            shutil.rmtree(self.uri, ignore_errors=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.record["uri"] == PER_GENERATION:
            release_lite(self.uri)  # its folder is the reader's to open now

    def _drop_older(self) -> None:
        keep = {self.record["collection"], self.previous}
        prefix = f"{self.record['alias']}_g"
        if self.record["uri"] == PER_GENERATION:
            for folder in (self.root / "milvus").glob(f"{prefix}*.db"):
                if folder.name.removesuffix(".db") not in keep:
                    release_lite(str(folder))
                    shutil.rmtree(folder, ignore_errors=True)
            return
        for name in self.client.list_collections():
            if name.startswith(prefix) and name[len(prefix) :].isdigit() and name not in keep:
                self.client.drop_collection(name)


def publish(
    settings: Settings,
    root: Path,
    chunks: list[Chunk],
    vectors: np.ndarray,
    bm25: BM25Index,
    previous_manifest: dict[str, Any] | None,
) -> Publication:
    """Write the generation's rows into a new collection, indexed and loaded; on failure drop it and raise."""
    alias = alias_name(settings)
    recorded = recorded_uri(settings)
    collection = f"{alias}_g{time.time_ns()}"
    uri = _location(root, recorded, collection)
    if recorded == PER_GENERATION:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    client = connect(uri, settings.index.milvus_token)
    vector_index, search = _dense_index(len(chunks), settings)
    record = {"collection": collection, "alias": alias, "uri": recorded, "rows": len(chunks), "search": search}
    previous = (previous_manifest or {}).get("milvus", {})
    publication = Publication(
        settings, root, client, uri, record, previous.get("collection") if previous.get("uri") == recorded else None
    )
    try:
        with _calls(uri):
            _create(client, collection, int(vectors.shape[1]))
            weights = bm25_rows(bm25, len(chunks))
            for start in range(0, len(chunks), INSERT_BATCH):
                stop = min(start + INSERT_BATCH, len(chunks))
                client.insert(
                    collection,
                    [
                        {
                            "row": row,
                            "chunk_id": chunks[row].chunk_id,
                            "doc_id": chunks[row].doc_id,
                            "section": chunks[row].section,
                            "vector": vectors[row],
                            "bm25": weights[row],
                        }
                        for row in range(start, stop)
                    ],
                )
            params = client.prepare_index_params()
            params.add_index(field_name="vector", metric_type="IP", **vector_index)
            params.add_index(field_name="bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
            client.create_index(collection, params)
            client.load_collection(collection)
            written = client.get_collection_stats(collection).get("row_count")
            if written != len(chunks):
                raise IndexServiceError(f"Milvus at {uri} holds {written} rows of {len(chunks)} written")
    except BaseException:
        publication.abort()
        raise
    return publication


def up_to_date(manifest: dict[str, Any], settings: Settings) -> bool:
    """Whether the generation already has its collection where the settings say (else `rag index` writes one)."""
    if settings.index.backend != "milvus":
        return True
    return manifest.get("milvus", {}).get("uri") == recorded_uri(settings)


class MilvusBackend:
    """Searches the collection of one loaded generation."""

    def __init__(self, index: StoredIndex, settings: Settings) -> None:
        record = index.manifest.get("milvus")
        if not record:
            raise IndexMismatchError(
                f"the index at {index.root} has no Milvus collection (it was built with index.backend = faiss); "
                "run `rag index` to write one, or set index.backend = faiss (RAG_INDEX_BACKEND=faiss)"
            )
        self.index = index
        self.collection = str(record["collection"])
        self.search_params = dict(record.get("search", {}))
        recorded = str(record["uri"])
        if _is_server(recorded) and settings.index.milvus_uri:
            recorded = settings.index.milvus_uri  # the same cluster may be reached by another address
        self.uri = _location(index.root, recorded, self.collection)
        for stale in [u for u in _opened_lite if u != self.uri and not Path(u).exists()]:
            release_lite(stale)  # folders of pruned generations this process still served
        if recorded == PER_GENERATION and not Path(self.uri).is_dir():
            raise IndexCorruptError(
                f"the index at {index.root} names the Milvus Lite folder {self.uri}, which is missing; "
                "run `rag index --rebuild` to rebuild it"
            )
        self.client = connect(self.uri, settings.index.milvus_token)
        with _calls(self.uri):
            if not self.client.has_collection(self.collection):
                raise IndexCorruptError(
                    f"the index at {index.root} names the Milvus collection {self.collection}, which {self.uri} "
                    "does not hold; run `rag index --rebuild` to write it again"
                )
            self.client.load_collection(self.collection)

    def _search(
        self, data: Any, field_name: str, params: dict[str, Any], n: int, where: RowFilter | None
    ) -> list[tuple[int, float]]:
        if where is not None and not len(where.rows):
            return []
        with _calls(self.uri):
            result = self.client.search(
                self.collection,
                data=[data],
                anns_field=field_name,
                limit=n,
                filter=_expression(where),
                search_params={"metric_type": "IP", "params": params},
                output_fields=["row"],
            )
        ranked = [(int(hit["entity"]["row"]), float(hit["distance"])) for hit in result[0]]
        return sorted(ranked, key=lambda item: (-item[1], item[0]))  # ties by row, whatever order Milvus gives

    def dense(self, vector: np.ndarray, n: int, where: RowFilter | None) -> list[tuple[int, float]]:
        """Milvus's vector index (the kind FAISS would use at this size), inner product over unit vectors."""
        p = self.search_params
        params = {"ef": max(int(p["ef"]), n)} if "ef" in p else {"nprobe": int(p["nprobe"])} if "nprobe" in p else {}
        return self._search(np.asarray(vector, dtype=np.float32).tolist(), "vector", params, n, where)

    def bm25(self, query: str, n: int, where: RowFilter | None) -> list[tuple[int, float]]:
        """bm25s's weights in Milvus, scored by sparse inner product with the query's term counts."""
        terms = query_terms(self.index.bm25, query)
        if not terms:
            return []
        return self._search(terms, "bm25", {}, n, where)


def _expression(where: RowFilter | None) -> str:
    """A Milvus filter for the document and section filter (strings as JSON literals, quotes escaped)."""
    if where is None:
        return ""
    parts = []
    if where.doc_ids:
        parts.append(f"doc_id in [{', '.join(json.dumps(d) for d in where.doc_ids)}]")
    if where.sections:
        parts.append(f"section in [{', '.join(json.dumps(s) for s in where.sections)}]")
    return " and ".join(parts)
