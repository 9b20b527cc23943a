"""The OpenAPI schema at /openapi.json matches what the routes do: schemathesis generates requests from it.

Answers come from the fake model (fast); every response must have a documented status, content type and body
shape, and no request may cause a server error.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from rag.assistant import Assistant
from tests.conftest import SEEDS, make_settings
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.schemas.BaseSchema]:
    # A private copy of the seeds and its own index: generated requests upload and delete documents.
    root = tmp_path_factory.mktemp("schema")
    shutil.copytree(SEEDS, root / "corpus")
    with FakeOpenAI("Nothing in the passages says so.") as fake:
        settings_ = make_settings(root / "index", llm__base_url=fake.base_url, llm__model="fake")
        assistant = Assistant(settings_)
        assistant.build_index([str(root / "corpus")])
        with LiveServer(assistant, api_key="k", max_queue=64) as live:
            schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
            schema.config.headers = {"Authorization": "Bearer k"}
            yield schema


def test_routes_conform_to_the_schema(api_schema: schemathesis.schemas.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: schemathesis.Case) -> None:
            # A schema-valid request may still be refused with 422 by a rule JSON Schema cannot state (the last
            # message must be the user's, a question is not blank): the other checks all apply.
            case.call_and_validate(headers={"Authorization": "Bearer k"}, excluded_checks=[positive_data_acceptance])

        conforms()
