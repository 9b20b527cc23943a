"""Read a corpus: every .txt/.md/.html/.pdf file under the given paths becomes a Document.

``doc_id`` is the path relative to its corpus root, ``/``-separated, with its extension.
``text`` is the file as read (``Path.read_text(encoding="utf-8")`` for text files, the
extracted text for HTML and PDF); every offset downstream points into it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from rag.config import IngestSettings
from rag.errors import CorpusError
from rag.types import Document, IngestProblem, Segment

log = logging.getLogger(__name__)

_DATE_LINE = re.compile(r"^\s*date\s+(\d{4}-\d{2}-\d{2})\b[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_URL = re.compile(r"https?://[^\s<>\"')]+")
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
# A word of a URL path: letters only, lower case or capitalised ("foreign", "Policy"; not "cKNonkJE02Bw").
_PATH_WORD = re.compile(r"[^\W\d_][^\W\d_A-Z]*")
# Path segments that are a site's machinery, not words about the page.
_PATH_PLUMBING = frozenset(
    "amp article articles asset_publisher content default doc docs en html id index item node page post posts "
    "story view www".split()
)
# A slug of this many words is the page's own headline ("us-russia-at-odds-over-military-activity").
_SLUG_WORDS = 3
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    """A file found under a corpus root."""

    path: Path
    doc_id: str


@dataclass(frozen=True)
class Corpus:
    """The documents read from the corpus roots, and the files that could not be used."""

    documents: list[Document]
    problems: list[IngestProblem]


def discover(
    paths: list[str], settings: IngestSettings, problems: list[IngestProblem] | None = None
) -> list[SourceFile]:
    """List the indexable files under ``paths`` (files or folders), sorted by doc_id.

    A symbolic link inside a folder is followed only to a file inside that folder (unless
    ``ingest.follow_links``): one to a file elsewhere (``passwd.txt -> /etc/passwd``), to a folder, a broken
    one or a loop is skipped and reported in ``problems``. A file named on the command line is read as given.
    """
    if not paths:
        raise CorpusError("no corpus path given; pass a folder, e.g. `rag index seeds/`")
    extensions = {e.lower() for e in settings.extensions}
    found: dict[str, SourceFile] = {}
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            raise CorpusError(f"corpus path {raw!r} does not exist; check the path (cwd is {Path.cwd()})")
        if root.is_file():
            candidates: Iterator[tuple[Path, Path]] = iter([(root, root.parent)])
        else:
            candidates = ((p, root) for p in sorted(root.rglob("*")))
        for path, base in candidates:
            rel = path.relative_to(base)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if path.is_symlink() and path != root:
                why = _link_problem(path, root, settings)
                if why is not None:
                    if problems is not None and (
                        path.suffix.lower() in extensions or why.startswith("a link to a folder")
                    ):
                        problems.append(IngestProblem(str(path), why))
                    continue
            if not path.is_file() or path.suffix.lower() not in extensions:
                continue
            doc_id = rel.as_posix()
            if doc_id in found and found[doc_id].path.resolve() != path.resolve():
                raise CorpusError(
                    f"two files map to doc_id {doc_id!r}: {found[doc_id].path} and {path}; "
                    "index them from one common folder so their relative paths differ"
                )
            found[doc_id] = SourceFile(path=path, doc_id=doc_id)
    if not found:
        where = ", ".join(paths)
        raise CorpusError(
            f"no indexable documents under {where}; supported extensions: {', '.join(sorted(extensions))}"
        )
    return [found[k] for k in sorted(found)]


def _link_problem(path: Path, root: Path, settings: IngestSettings) -> str | None:
    """Why the symbolic link ``path`` under ``root`` is not followed, or None to read it."""
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 raises this for a loop
        return "a symbolic link that loops; skipped"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops; skipped"
        return f"a broken symbolic link (to {os.readlink(path)}); skipped"
    if target.is_dir():
        return f"a link to a folder ({target}); not followed, index that folder itself to include it"
    if not settings.follow_links and not target.is_relative_to(root.resolve()):
        return (
            f"a link to {target}, outside the corpus folder {root}; skipped "
            "(set ingest.follow_links = true, RAG_INGEST_FOLLOW_LINKS=true, to index such links)"
        )
    return None


def file_sha256(path: Path) -> str:
    """Hash a file in blocks, so a large file is never held twice in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class PendingFile:
    """A file whose content the index does not hold yet: ``read_pending`` reads it."""

    source: SourceFile
    sha256: str


def read_corpus(
    paths: list[str],
    settings: IngestSettings,
    known: Mapping[str, Document] | None = None,
    on_file: Callable[[int, int], None] | None = None,
) -> Corpus:
    """Read every document under ``paths``; a file that cannot be used becomes a problem, not a failure.

    ``known`` maps doc_id to an already-read Document: a file whose hash matches is not parsed again.
    ``on_file(done, total)`` is called after each file.
    """
    documents: list[Document] = []
    problems: list[IngestProblem] = []
    for entry in scan_corpus(paths, settings, problems, known, on_file):
        if isinstance(entry, PendingFile):
            doc, file_problems = read_pending(entry, settings)
            problems.extend(file_problems)
            if doc is None:
                continue
            entry = doc
        documents.append(entry)
    for problem in problems:
        log.warning("%s: %s", problem.path, problem.message)
    return Corpus(documents=documents, problems=problems)


def scan_corpus(
    paths: list[str],
    settings: IngestSettings,
    problems: list[IngestProblem],
    known: Mapping[str, Document] | None = None,
    on_file: Callable[[int, int], None] | None = None,
) -> Iterator[Document | PendingFile]:
    """Each indexable file under ``paths`` in doc_id order: the ``known`` Document when the file's hash matches
    it, else a PendingFile to read. A file that cannot be used (too large, unreadable) goes to ``problems``.
    ``on_file(done, total)`` is called after each file (after it is read, when the caller reads it at once)."""
    sources = discover(paths, settings, problems)
    for done, source in enumerate(sources, start=1):
        if on_file is not None and done > 1:
            on_file(done - 1, len(sources))
        try:
            size = source.path.stat().st_size
            if size > settings.max_bytes:
                raise _Skip(
                    f"{size:,} bytes is over ingest.max_bytes ({settings.max_bytes:,}); "
                    "split the file or raise RAG_INGEST_MAX_BYTES"
                )
            sha = file_sha256(source.path)
        except _Skip as exc:
            problems.append(IngestProblem(str(source.path), str(exc)))
            continue
        except OSError as exc:
            problems.append(IngestProblem(str(source.path), f"cannot read: {exc.strerror or exc}"))
            continue
        previous = (known or {}).get(source.doc_id)
        # A PDF indexed before pages were recorded is read again, to get them.
        stale = previous is not None and source.path.suffix.lower() == ".pdf" and not previous.pages
        if previous is not None and previous.sha256 == sha and not stale:
            yield previous
        else:
            yield PendingFile(source, sha)
    if on_file is not None:
        on_file(len(sources), len(sources))


def read_pending(pending: PendingFile, settings: IngestSettings) -> tuple[Document | None, list[IngestProblem]]:
    """Read one file: its Document and any warning, or None and why it cannot be indexed."""
    path = str(pending.source.path)
    try:
        doc, warning = _read_document(pending.source, pending.sha256, settings)
    except _Skip as exc:
        return None, [IngestProblem(path, str(exc))]
    except OSError as exc:
        return None, [IngestProblem(path, f"cannot read: {exc.strerror or exc}")]
    return doc, ([IngestProblem(path, warning, skipped=False)] if warning else [])


class _Skip(Exception):
    """A file that cannot be indexed; the message says why and what to do."""


def _read_document(source: SourceFile, sha: str, settings: IngestSettings) -> tuple[Document, str | None]:
    suffix = source.path.suffix.lower()
    warning = None
    metadata: dict[str, str] = {}
    pages: list[int] = []
    if suffix == ".pdf":
        text, metadata, pages = _read_pdf(source.path, ocr=settings.ocr)
    elif suffix == ".docx":
        text, metadata = _read_docx(source.path)
    else:
        raw = source.path.read_bytes()
        if b"\x00" in raw[:_SNIFF_BYTES]:
            raise _Skip("binary file (NUL bytes), not text; remove it or convert it to .txt")
        text, warning = _decode(raw)
        if suffix in (".html", ".htm"):
            text, metadata = _html_to_text(text)
    if not text.strip():
        raise _Skip("empty file: no text to index")
    metadata = {**_text_metadata(text), **metadata}
    from rag.clean import classify  # local: clean is only needed once a file is really read

    title = metadata.pop("title", "") or guess_title(text, classify(text), suffix, metadata) or source.path.stem
    document = Document(
        doc_id=source.doc_id, path=str(source.path), title=title, text=text, sha256=sha, metadata=metadata, pages=pages
    )
    return document, warning


def _decode(raw: bytes) -> tuple[str, str | None]:
    """Decode as UTF-8; fall back to cp1252, then latin-1, with a warning. Newlines as ``read_text`` gives them."""
    warning = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        for encoding in ("cp1252", "latin-1"):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            warning = (
                f"not valid UTF-8 (byte {exc.start}); read as {encoding}. "
                "Offsets point into the text `rag show` prints; re-save the file as UTF-8 to silence this"
            )
            break
    # Universal newlines, exactly as Path.read_text does, so offsets match it.
    return text.replace("\r\n", "\n").replace("\r", "\n"), warning


# Elements that begin a block of their own; inline elements (a, b, span, ...) run on within the line.
_HTML_BLOCKS = frozenset(
    "address article aside blockquote body caption dd details dialog div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hgroup hr html li main menu nav ol p pre section summary table tbody td tfoot th "
    "thead tr ul".split()
)
_HTML_DROPPED = ("script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas", "button")
# Site chrome, not the page's article: navigation, the site's banner and footer, sidebars (and their ARIA roles).
# A <header> inside an <article> or <main> is that article's own header (its headline, byline) and is kept.
_HTML_CHROME = ("nav", "aside", "footer", "header")
_HTML_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
# A block made only of links (and separators), at least this many, each short, is a menu: "Home | Jobs | Contact".
_MENU_LINKS = 3
_MENU_LINK_WORDS = 4
_MENU_SEPARATORS = re.compile(r"[\s|·•/»›>,–—-]*")
_BR = "\x00"  # where a <br> broke the line; a newline in the HTML source is only white space


def _html_to_text(html: str) -> tuple[str, dict[str, str]]:
    """The page's text without its chrome: a block element is a paragraph (blocks apart by a blank line), inline
    elements stay within their line, a table row is its cells joined by " | ", <br> breaks a line."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    metadata = _html_metadata(soup)
    for tag in soup(list(_HTML_DROPPED)):
        tag.decompose()
    has_text = bool(soup.get_text().strip())
    chrome = [
        tag
        for tag in soup.find_all(True)
        if (tag.name in _HTML_CHROME and not (tag.name == "header" and tag.find_parent(["article", "main"])))
        or str(tag.get("role") or "").lower() in _HTML_CHROME_ROLES
        or _is_link_menu(tag)
    ]
    for tag in chrome:
        if not tag.decomposed:
            tag.decompose()
    blocks: list[str] = []
    _html_blocks(soup, blocks, [])
    if has_text and not blocks:
        raise _Skip(
            "no article text: all of the page is navigation, banner, footer or sidebar "
            "(<nav>, <header>, <footer>, <aside>), which is not indexed"
        )
    return "\n\n".join(blocks) + "\n", metadata


def _html_metadata(soup: Any) -> dict[str, str]:
    """Title, site, date and URL as the page's <head> states them."""
    metadata: dict[str, str] = {}
    if soup.title and soup.title.string:
        metadata["title"] = " ".join(soup.title.string.split())
    for tag in soup.find_all("meta"):
        key = str(tag.get("property") or tag.get("name") or "").lower()
        content = str(tag.get("content") or "").strip()
        if not content:
            continue
        if key in ("og:site_name", "application-name"):
            metadata.setdefault("site", content)
        elif key in ("article:published_time", "date", "dc.date", "pubdate"):
            metadata.setdefault("date", content[:10])
        elif key == "og:url":
            metadata.setdefault("url", content)
    canonical = soup.find("link", rel="canonical")
    if canonical is not None and canonical.get("href"):
        metadata.setdefault("url", str(canonical.get("href")))
    return metadata


def _is_link_menu(tag: Any) -> bool:
    """A block with no blocks inside, made only of short links and separators ("Home | Jobs | Contact")."""
    if tag.name not in _HTML_BLOCKS or tag.name in ("body", "html") or tag.find(list(_HTML_BLOCKS)) is not None:
        return False
    links = tag.find_all("a")
    if len(links) < _MENU_LINKS or any(len(a.get_text(" ").split()) > _MENU_LINK_WORDS for a in links):
        return False
    outside = "".join(s for s in tag.find_all(string=True) if s.find_parent("a") is None)
    return _MENU_SEPARATORS.fullmatch(outside) is not None


def _html_blocks(node: Any, blocks: list[str], line: list[str]) -> None:
    """Append the text blocks under ``node`` to ``blocks``; ``line`` gathers the inline text of the open block."""
    from bs4 import NavigableString, Tag

    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # not a comment, doctype or CDATA
                line.append(str(child).replace(_BR, " "))
        elif not isinstance(child, Tag):
            continue
        elif child.name == "br":
            line.append(_BR)
        elif child.name == "table":
            _flush(blocks, line)
            rows = [_table_row(tr) for tr in child.find_all("tr")]
            if any(rows):
                blocks.append("\n".join(r for r in rows if r))
        elif child.name == "pre":
            _flush(blocks, line)
            code = "\n".join(ln.rstrip() for ln in child.get_text().splitlines()).strip("\n")
            if code.strip():
                blocks.append(code)
        elif child.name in _HTML_BLOCKS:
            _flush(blocks, line)
            _html_blocks(child, blocks, line)
            _flush(blocks, line)
        else:
            _html_blocks(child, blocks, line)


def _table_row(tr: Any) -> str:
    cells = (" ".join(cell.get_text(" ").split()) for cell in tr.find_all(["td", "th"], recursive=False))
    return " | ".join(c for c in cells if c)


def _flush(blocks: list[str], line: list[str]) -> None:
    """Close the open block: white space collapsed as a browser does, a new line only where a <br> was."""
    lines = (" ".join(part.split()) for part in "".join(line).split(_BR))
    text = "\n".join(ln for ln in lines if ln)
    if text:
        blocks.append(text)
    line.clear()


def _read_pdf(path: Path, *, ocr: bool = False) -> tuple[str, dict[str, str], list[int]]:
    """The text of every page, pages apart by a blank line, and the offset where each page begins. A PDF with no
    text layer is read by OCR when ``ocr``, else skipped with the fix."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    metadata: dict[str, str] = {}
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Skip("encrypted PDF; decrypt it first (e.g. `qpdf --decrypt`)")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        if ocr and not any(pages):
            pages = [_ocr_page(page, path, n) for n, page in enumerate(reader.pages, start=1)]
            metadata["ocr"] = "tesseract"
        info: Any = reader.metadata or {}
    except _Skip:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise _Skip(f"unreadable PDF ({type(exc).__name__}: {exc}); check that the file is a complete PDF") from exc
    parts: list[str] = []
    starts = []
    length = 0
    for page in pages:
        if page and length:
            parts.append("\n\n")
            length += 2
        starts.append(length)  # an empty page begins where the next one does
        parts.append(page)
        length += len(page)
    text = "".join(parts)
    if not text.strip() and ocr:
        raise _Skip("no text layer, and OCR (tesseract) found no text on its pages; check the scan's quality")
    if not text.strip():
        raise _Skip(
            "no text layer: a scanned PDF, its pages are images; set ingest.ocr = true (RAG_INGEST_OCR=true) to "
            "read it with tesseract (Debian package tesseract-ocr), or OCR it first (e.g. `ocrmypdf scan.pdf out.pdf`)"
        )
    title = str(info.get("/Title") or "").strip()
    if title:
        metadata["title"] = title
    return text + "\n", metadata, starts


# Seconds tesseract may take over one page image (a page at 300 dpi takes 2-10 s on one core).
_OCR_TIMEOUT = 300


def _ocr_page(page: Any, path: Path, number: int) -> str:
    """The text tesseract reads in the images of one PDF page (a scan is one image per page), lines as it
    gives them, paragraphs apart by a blank line."""
    import shutil
    import subprocess
    import tempfile

    tesseract = shutil.which("tesseract")
    if tesseract is None:
        raise _Skip(
            "no text layer, and ingest.ocr is on but the tesseract program is not installed; "
            "install it (`apt install tesseract-ocr`) or OCR the file first (e.g. `ocrmypdf scan.pdf out.pdf`)"
        )
    texts = []
    with tempfile.TemporaryDirectory(prefix="rag-ocr-") as folder:
        for n, image in enumerate(page.images):
            picture = Path(folder) / f"page-{number}-{n}.png"
            image.image.save(picture)
            try:
                run = subprocess.run(
                    [tesseract, str(picture), "stdout"],
                    capture_output=True, text=True, timeout=_OCR_TIMEOUT, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise _Skip(f"OCR of page {number} took over {_OCR_TIMEOUT} s; OCR the file first") from exc
            if run.returncode != 0:
                reason = (run.stderr.strip().splitlines() or ["no message"])[-1]
                raise _Skip(f"tesseract failed on page {number} of {path.name} ({reason})")
            texts.append(run.stdout)
    lines = [line.rstrip() for line in "\n".join(texts).replace("\x0c", "").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read_docx(path: Path) -> tuple[str, dict[str, str]]:
    """Paragraphs, headings and tables in document order: a paragraph or heading a line of its own, blank lines
    between them, a table row a line of cells joined by " | "."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise _Skip(f"unreadable .docx ({type(exc).__name__}: {exc}); check that the file is a Word document") from exc
    blocks: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            line = " ".join(item.text.split())
            if line:
                blocks.append(line)
        elif isinstance(item, Table):
            rows = [" | ".join(" ".join(cell.text.split()) for cell in row.cells) for row in item.rows]
            blocks.append("\n".join(r for r in rows if r.strip(" |")))
    text = "\n\n".join(b for b in blocks if b)
    metadata = {}
    title = (document.core_properties.title or "").strip()
    if not title:
        heading = next(
            (
                p.text.strip()
                for p in document.paragraphs
                if p.style is not None and (p.style.name or "").startswith(("Heading", "Title")) and p.text.strip()
            ),
            "",
        )
        title = heading
    if title:
        metadata["title"] = title
    return text + "\n", metadata


def _text_metadata(text: str) -> dict[str, str]:
    """Metadata a scraped page states in its first lines: a date line, a source URL, a site name."""
    head = text[:2000]
    metadata: dict[str, str] = {}
    date_line = _DATE_LINE.search(head)
    if date_line:
        metadata["date"] = date_line.group(1)
        site = date_line.group(2).strip()
        if site:
            metadata["site"] = site
    else:
        iso = _ISO_DATE.search(head)
        if iso:
            metadata["date"] = iso.group(1)
    url = _URL.search(head)
    if url:
        metadata["url"] = url.group(0)
        metadata.setdefault("site", urlparse(url.group(0)).netloc.removeprefix("www."))
    return metadata


def guess_title(
    text: str, segments: list[Segment], suffix: str = ".txt", metadata: dict[str, str] | None = None
) -> str:
    """The headline: a Markdown heading, else the first short line of the article, else what the page's URL and
    date say ("mid.ru: Foreign policy / news"), else the article's first sentence cut at a word."""
    if suffix == ".md":
        heading = _MD_HEADING.search(text)
        if heading:
            return heading.group(1).strip()
    article = [s for s in segments if s.section == "article"] or segments
    headline = _headline_line(text, article)
    if headline:
        return headline
    # A scraped page that opens with its URL and then a speech has no headline line; its address names it better
    # than the speech's first sentence ("First of all, I would like to thank you ...").
    metadata = metadata or {}
    from_url = url_title(metadata["url"]) if metadata.get("url") else ""
    date = metadata.get("date", "")
    if from_url or (date and metadata.get("site")):
        return ", ".join(part for part in (from_url or metadata["site"], date) if part)
    from rag.chunking import sentence_spans

    start, end = (article[0].start, article[0].end) if article else (0, len(text))
    spans = sentence_spans(text, start, end)
    first = " ".join(text[spans[0][0] : spans[0][1]].split()) if spans else ""
    return first if len(first) <= 80 else first[:77].rsplit(" ", 1)[0] + "..."


def _headline_line(text: str, article: list[Segment]) -> str:
    """The first short line among the article's first ten that reads as a headline, not a sentence or byline."""
    lines_seen = 0
    for segment in article:
        for line in text[segment.start : segment.end].splitlines():
            line = line.strip()
            if not line:
                continue
            lines_seen += 1
            words = line.split()
            if (
                4 <= len(words) <= 20
                and len(line) <= 150
                and not line.startswith("By ")
                and not line.endswith((".", ":", ","))
            ):
                return line
            if lines_seen >= 10:
                return ""
    return ""


def url_title(url: str) -> str:
    """What a page's address says about it: its slug in words ("/2021/05/20/us-russia-at-odds/" -> "Us russia at
    odds"; two words are enough after a date or an id), else its site and the section words before the first id
    ("mid.ru: Foreign policy / news"); "" if neither."""
    parsed = urlparse(url)
    site = parsed.netloc.lower().removeprefix("www.")
    sections: list[str] = []
    slug = ""
    in_sections = True
    for segment in unquote(parsed.path).split("/"):
        segment = re.sub(r"\.(?:html?|php|aspx?|jsp)$", "", segment, flags=re.I)
        if not segment or segment.lower() in _PATH_PLUMBING or re.fullmatch(r"[a-z]{2}(?:[-_][a-z]{2})?", segment):
            continue
        parts = [p for p in re.split(r"[-_+.\s–—]+", segment) if p]
        words = [p for p in parts if _PATH_WORD.fullmatch(p)]
        if not words or not all(p in words or p.isdigit() for p in parts):
            in_sections = False  # an id or a date: what follows is the page or the site's machinery
        elif len(words) >= _SLUG_WORDS or (len(words) >= 2 and not in_sections):
            slug = " ".join(parts)  # the last slug wins: it names the page, earlier ones are sections
        elif in_sections and len(words) == len(parts):
            sections.append(" ".join(words))
    if slug:
        return slug[0].upper() + slug[1:]
    if not sections or not site:
        return ""
    named = " / ".join(sections)
    return f"{site}: {named[0].upper()}{named[1:]}"
