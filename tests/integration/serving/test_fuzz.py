"""Property-based fuzzing of the live endpoint from its own OpenAPI document (schemathesis):
valid bodies and, separately, invalid ones for every operation; no answer may be a server
error. The number of examples is bounded (and derandomized) so the suite stays fast and
repeatable."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.integration

EXAMPLES = 40


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_endpoint_fail(served, mode):
    schema = schemathesis.openapi.from_url(f"{served.endpoint}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/healthz", "/metadata"}
    statuses: list[tuple[str, int]] = []

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not len(operation.body):
            continue  # an operation without a body has no invalid input to generate

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            response = case.call_and_validate(
                base_url=served.endpoint, checks=[not_a_server_error], timeout=30
            )
            statuses.append((case.operation.path, response.status_code))

        fuzz()
    assert statuses and max(status for _, status in statuses) < 500
    if mode is GenerationMode.NEGATIVE:
        assert ("/predict", 422) in statuses  # invalid bodies were generated and refused
    else:  # the schema's ranges let valid bodies through to the model, which scored them
        assert ("/predict", 200) in statuses
