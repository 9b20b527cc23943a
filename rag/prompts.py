"""Prompt templates are files in prompts/: ``NAME.system.txt`` and ``NAME.user.txt`` with ``{{variable}}`` slots."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rag.errors import RagError


def _prompts_dir() -> Path:
    """The repository's ``prompts/`` folder: package data of an installed wheel, or beside the package in a checkout.

    pyproject.toml maps ``prompts/`` to the package ``rag._prompts``, so a wheel carries the same files (one
    source, no copy to drift); in a source checkout that package may not be importable and the folder is read
    where it is.
    """
    spec = importlib.util.find_spec("rag._prompts")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "prompts"


PROMPTS_DIR = _prompts_dir()
_SLOT = re.compile(r"\{\{(\w+)\}\}")


class PromptError(RagError):
    """A prompt file is missing, or a variable it needs was not given."""


@dataclass(frozen=True)
class Prompt:
    """A system + user template pair; ``sha256`` identifies the exact text in outputs."""

    name: str
    system: str
    user: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.system}\x00{self.user}".encode()).hexdigest()

    @property
    def variables(self) -> set[str]:
        return set(_SLOT.findall(self.system)) | set(_SLOT.findall(self.user))

    def render(self, **values: str) -> list[dict[str, str]]:
        """Chat messages with every slot filled; a missing or unknown variable is an error."""
        missing = self.variables - set(values)
        if missing:
            raise PromptError(f"prompt {self.name!r} needs {', '.join(sorted(missing))}; pass a value for each")
        unknown = set(values) - self.variables
        if unknown:
            raise PromptError(f"prompt {self.name!r} has no slot for {', '.join(sorted(unknown))}")

        def fill(template: str) -> str:
            return _SLOT.sub(lambda m: values[m.group(1)], template)

        messages = [{"role": "system", "content": fill(self.system).strip()}] if self.system.strip() else []
        return [*messages, {"role": "user", "content": fill(self.user).strip()}]


@cache
def load_prompt(name: str, folder: Path = PROMPTS_DIR) -> Prompt:
    """Load ``folder/NAME.system.txt`` and ``folder/NAME.user.txt``."""
    try:
        system = (folder / f"{name}.system.txt").read_text(encoding="utf-8")
        user = (folder / f"{name}.user.txt").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PromptError(f"prompt {name!r} not found: {exc.filename} does not exist") from exc
    return Prompt(name=name, system=system, user=user)
