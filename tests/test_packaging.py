"""The wheel works outside the checkout: it carries the prompts of the top-level prompts/ folder as package data,
and `rag index` and `rag ask` run from another folder with the package imported from the wheel alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from rag.prompts import PROMPTS_DIR, load_prompt
from tests.fake_openai import FakeOpenAI

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
    assert {"rag/cli/__init__.py", "rag/llm/client.py", "rag/schemas.py", "rag/files.py"} <= names
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

    # `rag index FOLDER` and `rag ask` from that folder, importing rag from the wheel's files only.
    corpus = elsewhere / "docs"
    corpus.mkdir()
    (corpus / "fleet.txt").write_text(
        "Fleet news\n\nAdm. Alexander Moiseyev is the chief of Russia's Northern Fleet, officials said on Monday.\n",
        encoding="utf-8",
    )
    env = {
        "PYTHONPATH": str(installed),
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "HF_HUB_OFFLINE": "1",
        "RAG_INDEX_DIR": str(elsewhere / "index"),
    }
    rag = [sys.executable, "-m", "rag.cli"]
    indexed = subprocess.run([*rag, "index", str(corpus)], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert indexed.returncode == 0, indexed.stderr
    with FakeOpenAI("Adm. Alexander Moiseyev is the chief of Russia's Northern Fleet [1].") as model:
        env |= {"RAG_LLM_BASE_URL": model.base_url, "RAG_LLM_MODEL": "fake"}
        question = "Who is the chief of Russia's Northern Fleet?"
        asked = subprocess.run(
            [*rag, "ask", question, "--json"], capture_output=True, text=True, cwd=elsewhere, env=env
        )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["abstained"] and "Moiseyev" in answer["answer"]
    assert (
        answer["citations"][0]["doc_id"] == "fleet.txt" and answer["prompt"]["sha256"] == load_prompt("answer").sha256
    )
    where = subprocess.run(
        [sys.executable, "-c", "import rag; print(rag.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert Path(where.stdout.strip()).resolve() == (installed / "rag" / "__init__.py").resolve()
