"""One settings object, nested by stage: defaults < rag.toml < RAG_* environment variables.

An environment variable ``RAG_<SECTION>_<FIELD>`` sets ``settings.<section>.<field>``
(for example ``RAG_LLM_BASE_URL`` or ``RAG_INDEX_DIR``). ``rag.toml`` is read from the
current directory, or from the file named by ``RAG_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag import types as types_
from rag.errors import ConfigError


@dataclass
class CorpusSettings:
    paths: list[str] = field(default_factory=lambda: ["seeds"])


@dataclass
class IngestSettings:
    extensions: list[str] = field(default_factory=lambda: [".txt", ".md", ".html", ".htm", ".pdf", ".docx"])
    max_bytes: int = 50_000_000
    # A symbolic link in a corpus folder is read only when it points to a file inside that folder, unless this
    # is true (a link to /etc/passwd would otherwise be indexed and served by /v1/documents).
    follow_links: bool = False
    # A PDF without a text layer (a scan) is read with the tesseract OCR program (Debian package tesseract-ocr)
    # when this is true; otherwise it is skipped with a message naming this setting.
    ocr: bool = False


@dataclass
class ChunkSettings:
    size: int = 1000  # target characters per chunk (about 230 tokens: under MiniLM's 256-token window)
    overlap: int = 200  # characters of trailing sentences repeated at the start of the next chunk
    min_size: int = 40  # fragments shorter than this are merged into a neighbour


@dataclass
class EmbedSettings:
    model: str = "all-minilm-l6-v2"
    batch_size: int = 64
    device: str = "cpu"
    backend: types_.EmbedBackend = "onnx"
    # onnxruntime threads per encoder; 0: its default, one per core. `rag index --engine ray` gives each actor
    # one, so that index.ray_workers actors on a node do not each start a thread per core.
    threads: int = 0


@dataclass
class IndexSettings:
    dir: str = "index"
    kind: str = "auto"  # auto | flat | hnsw | ivf
    exact_max: int = 50_000  # auto: exact (flat) search up to this many chunks, IVF above (docs/performance.md)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 100  # 200 took twice as long to build for the same recall at 30k (scale suite)
    hnsw_ef_search: int = 128
    ivf_nlist: int = 0  # 0: about 4 * sqrt(n)
    ivf_nprobe: int = 0  # 0: about sqrt(nlist), at least 16
    # faiss: search the generation's own FAISS and BM25 files. milvus: search a Milvus collection written with
    # each generation (its vectors and BM25 weights); the chunk and document tables stay in the generation.
    backend: types_.IndexBackend = "faiss"
    # Empty: a Milvus Lite folder per generation in index.dir/milvus/ (a live `rag index` and `rag serve` then
    # never open the same one); a path ending in .db: one Milvus Lite folder (one process at a time);
    # http(s)://host:19530: a Milvus server or cluster (docs/scale-milvus.md).
    milvus_uri: str = ""
    milvus_token: str = ""  # a cluster's "user:password" or API key (RAG_INDEX_MILVUS_TOKEN); never written out
    milvus_alias: str = ""  # the alias that names the live collection; empty: rag_<index folder name>
    # Where new and changed documents are read, chunked and embedded: "local" (this process) or "ray" (Ray Data,
    # an actor pool of encoders; `pip install 'ray[data]'`). Both write the same generation (docs/scale.md).
    engine: types_.IndexEngine = "local"
    # engine = ray: empty starts a local Ray instance for the run; "auto" or "ray://host:10001" joins a cluster.
    ray_address: str = ""
    ray_workers: int = 2  # engine = ray: encoder actors, each loading the model once


@dataclass
class RetrieveSettings:
    mode: types_.SearchMode = "hybrid"
    k: int = 5
    rrf_k: int = 60
    candidates: int = 50  # per retriever, before fusion
    max_query_chars: int = 2000


@dataclass
class AnswerSettings:
    k: int = 8  # passages retrieved for a question (6 -> 8 with neighbour_weight: see below)
    # A two-part question ("..., and in which city is that team?") is searched for part by part and answered in
    # one call over the merged evidence, each clause of the answer verified against its own part. With decompose
    # it is answered part by part instead (a search, evidence and model call each): on the 15 multi_doc seeds
    # questions as right (1) and as often wrong (2), 5 s slower (docs/evaluation.md), so off by default.
    decompose: bool = False
    part_k: int = 3  # passages retrieved for each part of a two-part question, besides the whole question's
    evidence_chars: int = 1200  # budget of evidence sentences in the prompt (about 300 tokens)
    # The share of a relevant sentence's score its neighbours inherit. Gold sentence in the evidence, k = 6 and
    # 0.0 -> k = 8 and 0.8: seeds 0.797 -> 0.848; SQuAD --sample 200 --seed 0 0.814 -> 0.872 (86 answerable);
    # --seed 1 0.949 -> 0.939 (99): 168 of 185 SQuAD golds against 164 (docs/evaluation.md).
    neighbour_weight: float = 0.8
    max_tokens: int = 200
    temperature: float = 0.0
    judge: bool = True  # the model as entailment judge of every answer sentence (false: lexical checks only)
    # A sentence is shown as supported when its calibrated support score (rag.verify.support_score) reaches
    # this; fitted on the dev half of evals/support.jsonl for precision >= 0.97, the goal (`rag eval
    # --support`); 0.95 (0.74) kept 14 more wrong answers than right ones on SQuAD: docs/evaluation.md.
    support_threshold: float = 0.845  # dev: precision 0.972, recall 0.580; test: 0.958, 0.613
    # Retrieved sentences the judge tries as the answer when none of the model's is verified (extractive
    # fallback). Off by default: on the 38 seeds questions that abstain, 3 tried sentences let it answer 8,
    # 3 rightly (docs/evaluation.md); worth turning on with a stronger judge endpoint.
    fallback_sentences: int = 0
    # When none of the model's sentences is verified (a refusal included), ask it once more to copy the sentence
    # that answers (prompts/extract.user.txt), and verify that: one more model call on those questions only.
    # Off by default: with the bundled judge it answered 4 more seeds questions rightly and 1 wrongly, but on
    # SQuAD 2.0 (--sample 200 --seed 0) 5 rightly and 22 wrongly, mostly unanswerable ones (docs/evaluation.md).
    extract_retry: bool = False
    # When the model's first sentence is not verified, the evidence sentence holding what it adds to the question
    # (its answer words and numbers) is judged and shown in its place, in the source's own words. Measured
    # (docs/evaluation.md): seeds 3 more right answers, none wrong; SQuAD 2.0 (--sample 200 --seed 0) 10 more
    # right, 8 more wrong (0.593 contain the answer against 0.477; abstention F1 0.739 against 0.725).
    source_words: bool = True
    max_question_chars: int = 1000
    history_turns: int = 3  # turns of a chat used to rewrite a follow-up question


@dataclass
class LLMSettings:
    base_url: str = ""  # empty: the bundled local model
    model: str = ""
    api_key: str = ""
    bundled: types_.ModelVariant = "1.5b"
    timeout: float = 120.0  # seconds one request may wait for the server's next bytes
    max_retries: int = 2
    # Seconds all the model calls of one answer may take together (rewrite, answer, judge, retries); 0: no limit.
    # Under server.queue_timeout, so a hung model frees the answer slot before the requests queued behind it
    # give up.
    deadline: float = 90.0


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"  # loopback only, unless told otherwise
    port: int = 8000
    api_key: str = ""  # RAG_API_KEY: when set, every /v1 route needs "Authorization: Bearer <key>"
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed to call the API; none by default
    # Host names a request may carry in its Host header. Empty: bound to loopback, only loopback names
    # (localhost, 127.0.0.1, ::1), so a DNS-rebinding page cannot reach the server through a browser; bound
    # elsewhere, any. "*" allows any.
    allowed_hosts: list[str] = field(default_factory=list)
    max_body_bytes: int = 1_000_000
    # The largest file POST /v1/documents accepts (its body may be this plus 64 KiB of multipart framing);
    # ingest.max_bytes still applies to what is indexed.
    max_upload_bytes: int = 20_000_000
    # Where POST /v1/feedback appends its JSON lines; empty: feedback.jsonl in the index folder (index.dir).
    feedback_file: str = ""
    body_timeout: float = 30.0  # seconds a request body may take to arrive whole before 408
    max_messages: int = 100  # messages of one chat request
    llm_slots: int = 0  # answers computed at once; 0: 1 for the bundled model, 4 for a configured endpoint
    max_queue: int = 8  # answers waiting for a slot; one more gets 503 with Retry-After
    queue_timeout: float = 120.0  # seconds an answer may wait for a slot before 503


@dataclass
class EvalSettings:
    # A separate judge for ALCE citation scores in `rag eval`; empty judge_base_url: the answering model judges.
    judge_base_url: str = ""  # an OpenAI-compatible endpoint (RAG_EVAL_JUDGE_BASE_URL)
    judge_model: str = ""  # the model that endpoint serves; needed with judge_base_url
    judge_api_key: str = ""  # sent only to judge_base_url; never written to a report


@dataclass
class Settings:
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    embed: EmbedSettings = field(default_factory=EmbedSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    retrieve: RetrieveSettings = field(default_factory=RetrieveSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def validate(self) -> Settings:
        """Check values that would otherwise fail deep inside a stage."""
        c = self.chunk
        if c.size < 100:
            raise ConfigError(f"chunk.size = {c.size} is too small; use at least 100 characters")
        if not 0 <= c.overlap < c.size // 2:
            raise ConfigError(f"chunk.overlap = {c.overlap} must be >= 0 and below half of chunk.size ({c.size})")
        e = self.embed
        if e.backend not in types_.EMBED_BACKENDS:
            raise ConfigError(f"embed.backend = {e.backend!r}; valid: {', '.join(types_.EMBED_BACKENDS)}")
        if e.threads < 0:
            raise ConfigError(f"embed.threads = {e.threads} must be >= 0 (0: one per core)")
        if e.backend != "torch" and e.device != "cpu":
            raise ConfigError(f"embed.device = {e.device!r} needs embed.backend = torch (the onnx backends run on cpu)")
        if self.index.kind not in ("auto", *types_.INDEX_KINDS):
            raise ConfigError(f"index.kind = {self.index.kind!r}; valid: auto, {', '.join(types_.INDEX_KINDS)}")
        if self.index.backend not in types_.INDEX_BACKENDS:
            raise ConfigError(f"index.backend = {self.index.backend!r}; valid: {', '.join(types_.INDEX_BACKENDS)}")
        if self.index.engine not in types_.INDEX_ENGINES:
            raise ConfigError(f"index.engine = {self.index.engine!r}; valid: {', '.join(types_.INDEX_ENGINES)}")
        if self.index.ray_workers < 1:
            raise ConfigError(f"index.ray_workers = {self.index.ray_workers} must be at least 1")
        if self.retrieve.mode not in types_.SEARCH_MODES:
            raise ConfigError(f"retrieve.mode = {self.retrieve.mode!r}; valid: {', '.join(types_.SEARCH_MODES)}")
        if self.llm.bundled not in types_.MODEL_VARIANTS:
            raise ConfigError(f"llm.bundled = {self.llm.bundled!r}; valid: {', '.join(types_.MODEL_VARIANTS)}")
        if self.llm.timeout <= 0 or self.llm.deadline < 0 or self.llm.max_retries < 0:
            raise ConfigError(
                f"llm.timeout must be > 0, llm.deadline >= 0 (0: none) and llm.max_retries >= 0 (got "
                f"{self.llm.timeout}, {self.llm.deadline}, {self.llm.max_retries})"
            )
        srv = self.server
        if not 0 <= srv.port <= 65535:
            raise ConfigError(f"server.port = {srv.port} is not a TCP port; use 1-65535 (0 picks a free one)")
        if srv.llm_slots < 0 or srv.max_queue < 0 or srv.queue_timeout <= 0 or srv.max_body_bytes < 1024:
            raise ConfigError(
                "server.llm_slots and server.max_queue must be >= 0, server.queue_timeout > 0 and "
                f"server.max_body_bytes >= 1024 (got {srv.llm_slots}, {srv.max_queue}, {srv.queue_timeout}, "
                f"{srv.max_body_bytes})"
            )
        if srv.max_upload_bytes < 1:
            raise ConfigError(f"server.max_upload_bytes = {srv.max_upload_bytes} must be at least 1 byte")
        return self


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a TOML or environment value to the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [str(v) for v in value]
        raise ConfigError(f"{where} must be a list, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    try:
        if annotation is bool:
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        if annotation is int:
            return int(value)
        if annotation is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} = {value!r} is not a valid {annotation.__name__}") from exc


def _apply(section: Any, name: str, values: dict[str, Any], source: str) -> None:
    hints = typing.get_type_hints(type(section))
    for key, value in values.items():
        if key not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(section))
            raise ConfigError(f"{source}: unknown setting {name}.{key}; valid: {valid}")
        setattr(section, key, _coerce(value, hints[key], f"{source}: {name}.{key}"))


def load_settings(config_file: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build the settings: defaults, then ``rag.toml``, then ``RAG_*`` environment variables."""
    env = dict(os.environ) if env is None else env
    settings = Settings()
    path = Path(config_file or env.get("RAG_CONFIG") or "rag.toml")
    if config_file or env.get("RAG_CONFIG") or path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist; create it or unset RAG_CONFIG") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        for name, values in data.items():
            if not hasattr(settings, name) or not isinstance(values, dict):
                valid = ", ".join(f.name for f in dataclasses.fields(settings))
                raise ConfigError(f"{path}: unknown section [{name}]; valid sections: {valid}")
            _apply(getattr(settings, name), name, values, str(path))
    for f in dataclasses.fields(settings):
        section = getattr(settings, f.name)
        prefix = f"RAG_{f.name.upper()}_"
        values = {
            key[len(prefix) :].lower(): value
            for key, value in env.items()
            if key.startswith(prefix) and key[len(prefix) :].lower() in typing.get_type_hints(type(section))
        }
        _apply(section, f.name, values, "environment")
    if not settings.llm.api_key:
        settings.llm.api_key = env.get("OPENAI_API_KEY", "")
    if not settings.server.api_key:
        settings.server.api_key = env.get("RAG_API_KEY", "")
    return settings.validate()
