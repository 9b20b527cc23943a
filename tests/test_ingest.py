"""Reading a corpus: formats, metadata, encodings and every kind of bad file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.config import IngestSettings
from rag.errors import CorpusError
from rag.ingest import discover, read_corpus, url_title
from tests.conftest import SEEDS


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose page shows ``text`` (built by hand: no PDF writer is needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_seeds_are_read_as_read_text_gives_them() -> None:
    corpus = read_corpus([str(SEEDS)], IngestSettings())
    assert corpus.problems == []
    assert [d.doc_id for d in corpus.documents] == sorted(p.name for p in SEEDS.glob("*.txt"))
    for doc in corpus.documents:
        assert doc.text == (SEEDS / doc.doc_id).read_text(encoding="utf-8")
        assert len(doc.sha256) == 64


def test_seed_titles_and_metadata() -> None:
    docs = {d.doc_id: d for d in read_corpus([str(SEEDS)], IngestSettings()).documents}
    first = docs["000_b63fe8f3e2dac5e7.txt"]
    assert first.title == "Russia offers to restore direct air links with U.S., during Istanbul talks"
    assert first.metadata["date"] == "2025-03-01"
    assert first.metadata["site"] == "Japan Today"
    assert docs["002_17fbe4ec36de0cb9.txt"].title == "U.S. Allows Russia to Bring Plane to Retrieve Diplomats"
    assert docs["003_50cfdfd88efb925b.txt"].title == "US, Russia vow to boost cooperation"
    lavrov = docs["004_ef5f7f6cb4511981.txt"]
    assert lavrov.metadata["url"].startswith("https://www.mid.ru/en/foreign_policy/")
    assert lavrov.metadata["site"] == "mid.ru"


SEED_TITLES = {
    "000_b63fe8f3e2dac5e7.txt": "Russia offers to restore direct air links with U.S., during Istanbul talks",
    "001_c893d35b68656839.txt": "Russia Pushes For Resumption Of Direct Flights With US In Bilateral Talks",
    "002_17fbe4ec36de0cb9.txt": "U.S. Allows Russia to Bring Plane to Retrieve Diplomats",
    "003_50cfdfd88efb925b.txt": "US, Russia vow to boost cooperation",
    # 004 opens with its URL and then a speech: the address names it, not the speech's first sentence.
    "004_ef5f7f6cb4511981.txt": "mid.ru: Foreign policy / news",
}


def test_the_five_seeds_have_the_titles_a_reader_would_give_them() -> None:
    docs = read_corpus([str(SEEDS)], IngestSettings()).documents
    assert {d.doc_id: d.title for d in docs} == SEED_TITLES
    for doc in docs:
        assert "://" not in doc.title and not doc.title.endswith(".")  # no bare URL, no sentence from the text
        assert doc.title.split()[-1] in doc.text or doc.title.startswith(doc.metadata.get("site", "\0"))


@pytest.mark.parametrize(
    ("url", "title"),
    [
        (
            "https://www.militarytimes.com/news/2021/05/20/us-russia-at-odds-over-arctic/",
            "Us russia at odds over arctic",
        ),
        ("http://smoothiex12.blogspot.com/2021/05/probing-limits.html", "Probing limits"),
        (
            "https://www.mid.ru/en/foreign_policy/news/-/asset_publisher/cKNonkJE02Bw/content/id/4737957",
            "mid.ru: Foreign policy / news",
        ),
        ("https://example.com/about-us", "example.com: About us"),
        ("https://example.com/", ""),
        ("https://example.com/index.php?id=42", ""),
    ],
)
def test_a_url_gives_its_slug_or_its_site_and_sections(url: str, title: str) -> None:
    assert url_title(url) == title


def test_a_page_with_no_headline_or_url_is_titled_by_its_first_sentence_cut_at_a_word(tmp_path: Path) -> None:
    speech = (
        "First of all, I would like to thank our colleagues from the ministry for their proposal to meet here "
        "today in this beautiful city. We are ready to discuss every question.\n"
    )
    (tmp_path / "speech.txt").write_text(speech)
    (tmp_path / "dated.txt").write_text("date 2021-05-19  Example Wire\n" + speech)
    docs = {d.doc_id: d for d in read_corpus([str(tmp_path)], IngestSettings()).documents}
    cut = docs["speech.txt"].title
    assert cut.endswith("...") and len(cut) <= 80
    assert speech.startswith(cut.removesuffix("...")) and speech[len(cut) - 3] == " "  # ends at a word
    assert docs["dated.txt"].title == "Example Wire, 2021-05-19"


def test_formats_and_nested_doc_ids(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "notes.md").write_text("# Arctic notes\n\nThe Northern Sea Route runs from Norway to Alaska.\n")
    (tmp_path / "sub" / "page.html").write_text(
        "<html><head><title>Kerry in Sochi</title><meta property='og:site_name' content='Example News'>"
        "<script>var x = 1;</script></head><body><nav>Home</nav><h1>Kerry in Sochi</h1>"
        "<p>Kerry met Putin for four hours.</p><p>Lavrov spoke too.</p></body></html>"
    )
    (tmp_path / "sub" / "deeper" / "memo.pdf").write_bytes(minimal_pdf("Moiseyev commands the Northern Fleet."))
    (tmp_path / "sub" / "image.png").write_bytes(b"\x89PNG not indexed")
    (tmp_path / ".hidden.txt").write_text("hidden files are skipped")
    docs = {d.doc_id: d for d in read_corpus([str(tmp_path)], IngestSettings()).documents}
    assert set(docs) == {"notes.md", "sub/page.html", "sub/deeper/memo.pdf"}
    assert docs["notes.md"].title == "Arctic notes"
    html = docs["sub/page.html"]
    assert html.title == "Kerry in Sochi"
    assert html.metadata["site"] == "Example News"
    assert "Kerry met Putin for four hours." in html.text and "var x" not in html.text
    assert "Moiseyev commands the Northern Fleet." in docs["sub/deeper/memo.pdf"].text


CHROME_PAGE = """<!DOCTYPE html>
<html><head><title>Lisbon office opens - Northwind</title></head><body>
<header class="site"><a href="/"><img alt="">Northwind Cycles</a> <p>Bikes built to last since 1998</p></header>
<nav><ul><li><a href="/">Home</a></li><li><a href="/shop">Shop</a></li></ul></nav>
<div class="menu"><a href="/">Home</a> | <a href="/careers">Careers</a> | <a href="/contact">Contact</a></div>
<main><article>
<header><h1>The Lisbon office opens</h1></header>
<p>The Lisbon office opened in 2016 on Rua Augusta. It hosts the
People Operations and <a href="/teams/design">Design</a> teams.</p>
<p>Home | Careers | Contact</p>
<p>Staff can book a desk through the front desk in the lobby.</p>
</article></main>
<aside><h2>Most read</h2><p>Our summer sale starts soon</p></aside>
<div role="contentinfo">Registered in Estonia, company number 1234</div>
<footer><p>Copyright 2024 Northwind Cycles</p><a href="/privacy">Privacy</a></footer>
</body></html>
"""


def test_html_navigation_banner_footer_sidebar_and_menus_reach_no_chunk(tmp_path: Path) -> None:
    from rag.chunking import chunk_document
    from rag.clean import classify
    from rag.config import ChunkSettings

    (tmp_path / "office.html").write_text(CHROME_PAGE, encoding="utf-8")
    (doc,) = read_corpus([str(tmp_path)], IngestSettings()).documents
    chunks = chunk_document(doc, classify(doc.text), ChunkSettings())
    chunked = " ".join(c.text for c in chunks)
    for chrome in ("Northwind Cycles", "Bikes built", "Shop", "Careers", "Most read", "summer sale", "Estonia",
                   "Copyright", "Privacy"):  # fmt: skip
        assert chrome not in chunked, chrome
    assert "Bikes built" not in doc.text and "summer sale" not in doc.text  # chrome is not even in the text
    assert doc.text.startswith("The Lisbon office opens\n\n")  # the article's own <header> is its headline
    assert "It hosts the People Operations and Design teams." in chunked  # inline links stay in the sentence
    assert "Staff can book a desk" in chunked
    assert all(c.text == doc.text[c.start : c.end] for c in chunks)
    assert doc.title == "Lisbon office opens - Northwind"


def test_a_page_that_is_all_chrome_is_skipped_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "menu.html").write_text(
        "<html><body><nav><a href='/'>Home</a></nav><footer>(c) 2024</footer></body></html>"
    )
    (tmp_path / "ok.txt").write_text("A plain note about the Lisbon office.\n")
    read = read_corpus([str(tmp_path)], IngestSettings())
    assert [d.doc_id for d in read.documents] == ["ok.txt"]
    assert "menu.html" in read.problems[0].path and "navigation" in read.problems[0].message


def test_a_single_file_path_is_its_own_corpus(tmp_path: Path) -> None:
    path = tmp_path / "one.txt"
    path.write_text("Just one document about flights.\n")
    assert [s.doc_id for s in discover([str(path)], IngestSettings())] == ["one.txt"]


def test_bad_files_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Russia offered to restore direct flights.\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.md").write_text("  \n\n ")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02ELF" * 100)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (tmp_path / "latin.txt").write_bytes("Caf\xe9 talks in Z\xfcrich.\n".encode("latin-1"))
    (tmp_path / "huge.txt").write_text("word " * 5000)
    corpus = read_corpus([str(tmp_path)], IngestSettings(max_bytes=10_000))
    by_name = {Path(p.path).name: p for p in corpus.problems}
    assert "empty file" in by_name["empty.txt"].message
    assert "empty file" in by_name["blank.md"].message
    assert "binary file" in by_name["binary.txt"].message
    assert "unreadable PDF" in by_name["broken.pdf"].message
    assert "ingest.max_bytes" in by_name["huge.txt"].message
    assert by_name["latin.txt"].skipped is False and "not valid UTF-8" in by_name["latin.txt"].message
    docs = {d.doc_id: d for d in corpus.documents}
    assert set(docs) == {"good.txt", "latin.txt"}
    assert docs["latin.txt"].text == "Café talks in Zürich.\n"


def test_windows_newlines_match_read_text(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"First line.\r\nSecond line.\r\n")
    (doc,) = read_corpus([str(tmp_path)], IngestSettings()).documents
    assert doc.text == path.read_text(encoding="utf-8") == "First line.\nSecond line.\n"


def test_missing_path_and_empty_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"does-not-exist.*does not exist"):
        read_corpus([str(tmp_path / "does-not-exist")], IngestSettings())
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"no indexable documents under .*empty.*supported extensions"):
        read_corpus([str(tmp_path / "empty")], IngestSettings())


def test_a_large_file_is_read_without_trouble(tmp_path: Path) -> None:
    paragraph = "Russia and the United States discussed embassy staffing and direct flights. " * 20 + "\n\n"
    (tmp_path / "large.txt").write_text(paragraph * 3000)  # about 4.6 MB
    (doc,) = read_corpus([str(tmp_path)], IngestSettings()).documents
    assert len(doc.text) == len(paragraph) * 3000


def test_links_out_of_the_corpus_broken_or_looping_are_skipped_and_reported(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "notes.txt").write_text("The Lisbon office opened in 2016 and has forty desks.\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (corpus / "passwd.txt").symlink_to(secret)  # leaves the corpus
    (corpus / "alias.txt").symlink_to(corpus / "notes.txt")  # stays inside: read
    (corpus / "gone.txt").symlink_to(tmp_path / "deleted.txt")  # broken
    (corpus / "loop.txt").symlink_to(corpus / "loop.txt")  # loops
    (corpus / "elsewhere").symlink_to(tmp_path)  # a folder
    read = read_corpus([str(corpus)], IngestSettings())
    assert sorted(d.doc_id for d in read.documents) == ["alias.txt", "notes.txt"]
    why = {Path(p.path).name: p.message for p in read.problems}
    assert set(why) == {"passwd.txt", "gone.txt", "loop.txt", "elsewhere"}
    assert "outside the corpus folder" in why["passwd.txt"] and "ingest.follow_links" in why["passwd.txt"]
    assert "broken symbolic link" in why["gone.txt"] and "loops" in why["loop.txt"]
    assert "a link to a folder" in why["elsewhere"]
    assert all(p.skipped for p in read.problems)
    allowed = read_corpus([str(corpus)], IngestSettings(follow_links=True))
    assert "passwd.txt" in {d.doc_id for d in allowed.documents}  # only when asked for


OFFICE = Path(__file__).resolve().parent / "data" / "office"


def test_a_docx_gives_its_paragraphs_headings_and_table_rows_in_order() -> None:
    read = read_corpus([str(OFFICE / "onboarding.docx")], IngestSettings())
    (doc,) = read.documents
    assert doc.title == "Onboarding guide" and doc.pages == []
    blocks = doc.text.split("\n\n")
    assert blocks[:4] == [
        "Onboarding guide",
        "New staff receive a laptop and a badge on their first morning.",
        "Equipment",
        "The standard laptop is a 14-inch model with 32 GB of memory.",
    ]
    assert "Item | Owner\nBadge | Security desk\nParking permit | Facilities team" in blocks
    assert blocks[-1].startswith("Every newcomer meets their mentor on Tuesday")


def test_a_pdf_records_where_each_page_begins() -> None:
    (doc,) = read_corpus([str(OFFICE / "fleet-review.pdf")], IngestSettings()).documents
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    for page, phrase in ((1, "prepared for the ministry"), (2, "forty-two vessels"), (3, "nineteen days")):
        assert doc.page_at(doc.text.index(phrase)) == page, phrase
    assert doc.page_at(doc.pages[1]) == 2 and doc.page_at(doc.pages[1] - 1) == 1


def test_a_broken_docx_is_skipped_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "ok.txt").write_text("A plain note about the Lisbon office.\n")
    read = read_corpus([str(tmp_path)], IngestSettings())
    assert [d.doc_id for d in read.documents] == ["ok.txt"]
    assert "unreadable .docx" in read.problems[0].message


def scanned_pdf(path: Path, lines: list[str]) -> None:
    """A PDF whose one page is an image of ``lines`` (no text layer), as a scanner makes it."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("L", (1700, 400 + 120 * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=56)
    for n, line in enumerate(lines):
        draw.text((120, 160 + 120 * n), line, fill=0, font=font)
    page.save(path, "PDF", resolution=200.0)


def test_a_scanned_pdf_is_skipped_with_a_message_naming_it_and_the_fix(tmp_path: Path) -> None:
    scanned_pdf(tmp_path / "scan.pdf", ["The Lisbon office opened in 2016."])
    (tmp_path / "ok.txt").write_text("A plain note about the Lisbon office.\n")
    read = read_corpus([str(tmp_path)], IngestSettings())
    assert [d.doc_id for d in read.documents] == ["ok.txt"]
    (problem,) = read.problems
    assert problem.skipped and problem.path.endswith("scan.pdf")
    assert "no text layer" in problem.message and "\n" not in problem.message
    assert "ingest.ocr = true" in problem.message and "ocrmypdf" in problem.message  # the two ways to fix it


SCAN_LINES = ["The Lisbon office opened in 2016.", "It hosts the Design team."]


@pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="tesseract is not installed (apt install tesseract-ocr): OCR is untested"
)
def test_a_scanned_pdf_is_read_by_ocr_when_asked_and_indexed(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    scanned_pdf(corpus / "scan.pdf", SCAN_LINES)
    (doc,) = read_corpus([str(corpus)], IngestSettings(ocr=True)).documents
    assert " ".join(doc.text.split()) == " ".join(SCAN_LINES)
    assert doc.pages == [0] and doc.metadata["ocr"] == "tesseract"
    assistant = assistant_factory(ingest__ocr=True)
    assert assistant.build_index([str(corpus)]).added == ["scan.pdf"]
    (hit,) = assistant.search("When did the Lisbon office open?", k=1).hits
    assert hit.chunk.doc_id == "scan.pdf" and hit.page == 1
    assert "2016" in hit.chunk.text and hit.chunk.text == doc.text[hit.chunk.start : hit.chunk.end]


def test_ocr_without_tesseract_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scanned_pdf(tmp_path / "scan.pdf", SCAN_LINES)
    (tmp_path / "ok.txt").write_text("A plain note about the Lisbon office.\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    read = read_corpus([str(tmp_path)], IngestSettings(ocr=True))
    assert [d.doc_id for d in read.documents] == ["ok.txt"]
    (problem,) = read.problems
    assert problem.path.endswith("scan.pdf") and "apt install tesseract-ocr" in problem.message
