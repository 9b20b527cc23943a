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
