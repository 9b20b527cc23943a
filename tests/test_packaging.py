"""The wheel works outside the checkout: it carries the prompts of the top-level prompts/ folder as package data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from rag.prompts import PROMPTS_DIR, load_prompt

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_prompts_and_loads_them_from_another_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info beside the sources it builds
    for part in ("rag", "prompts"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("rag-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(installed)
    prompts = sorted(p.name for p in (ROOT / "prompts").glob("*.txt"))
    assert prompts and {f"rag/_prompts/{name}" for name in prompts} <= names
    assert "rag/web/chat.html" in names
    assert {"rag/server/__init__.py", "rag/server/app.py"} <= names  # the server is a subpackage
    assert {f"rag/eval/{m}.py" for m in ("__init__", "datasets", "scoring", "run", "gate", "report")} <= names
    # From a folder with no prompts/ beside it, the installed package reads its own copy of each prompt.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import json, rag.prompts as p; "
        "print(json.dumps({'dir': str(p.PROMPTS_DIR), "
        "'sha': {n: p.load_prompt(n).sha256 for n in ('answer', 'judge', 'rewrite', 'extract')}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
    )
    loaded = json.loads(result.stdout)
    assert Path(loaded["dir"]).resolve() == (installed / "rag" / "_prompts").resolve()
    assert loaded["sha"] == {n: load_prompt(n).sha256 for n in ("answer", "judge", "rewrite", "extract")}
    assert PROMPTS_DIR.resolve() == (ROOT / "prompts").resolve()  # the checkout reads the one source in place
