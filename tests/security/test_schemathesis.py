"""Generated requests against every operation of the OpenAPI document: never a 5xx.

Schemathesis derives requests from ``/api/openapi.json`` (valid ones and, in negative
mode, ones that break the schema) and sends them to the app in process, authenticated as
an admin so that every operation is reached past its role check. Every answer must be
below 500 and, for the statuses the document declares, match the declared schema.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.api.conftest import basic

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)]
EXAMPLES = 50  # per operation and mode


def test_no_operation_answers_a_server_error(app, world):
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    headers = basic("admin")
    ran: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                response = case.call(headers={**(case.headers or {}), **headers})
                ran[operation.label] = ran.get(operation.label, 0) + 1
                checks = [not_a_server_error]
                if mode is GenerationMode.POSITIVE:
                    checks += [response_schema_conformance, status_code_conformance]
                case.validate_response(response, checks=checks)

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs has nothing to break
    print(f"schemathesis: {sum(ran.values())} cases over {len(ran)} operations")
    assert len(ran) == len(operations)
