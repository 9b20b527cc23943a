"""What every benchmark suite shares: the repository root, the search queries, and the machine's description."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

QUERIES = [
    "What did Russia offer the United States during the Istanbul talks?",
    "Who will replace Anatoly Antonov as Russia's ambassador in Washington?",
    "What did Ryabkov say about resuming direct flights?",
    "Why was a Russian charter plane allowed to land in Washington?",
    "How long did Kerry's talks in Sochi last?",
    "Who is the chief of Russia's Northern Fleet?",
    "How much Arctic sea shelf did Russia claim?",
    "What did readers say about Lavrov?",
]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_synthetic_corpus(folder: Path, documents: int, *, paragraphs: int = 2, seed: int = 0) -> Path:
    """``documents`` small files under ``folder`` of sentences drawn from the seeds' own words at their
    frequencies, ``paragraphs`` paragraphs of 3-6 sentences each (about 600 characters a paragraph): text files,
    every 5th Markdown with a heading, every 7th an HTML page, every 4th in a subfolder. The same arguments
    always give the same files."""
    import random
    import re

    words = re.findall(
        r"[A-Za-z']+", " ".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "seeds").iterdir()))
    )
    rng = random.Random(seed)

    def sentence() -> str:
        chosen = rng.choices(words, k=rng.randint(8, 20))
        return " ".join([chosen[0].capitalize(), *chosen[1:]]) + "."

    for n in range(documents):
        title = " ".join(w.capitalize() for w in rng.choices(words, k=5))
        body = [" ".join(sentence() for _ in range(rng.randint(3, 6))) for _ in range(paragraphs)]
        sub = "part-b/" if n % 4 == 3 else ""
        if n % 7 == 6:
            path = folder / f"{sub}doc-{n:05d}.html"
            paras = "".join(f"<p>{p}</p>" for p in body)
            text = f"<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav><article>{paras}</article></body></html>"
        elif n % 5 == 4:
            path = folder / f"{sub}doc-{n:05d}.md"
            text = f"# {title}\n\n" + "\n\n".join(body) + "\n"
        else:
            path = folder / f"{sub}doc-{n:05d}.txt"
            text = f"{title}\n\n" + "\n\n".join(body) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder
