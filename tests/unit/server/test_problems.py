"""#14: errors answer as problem+json with the CLI's message and hint, one status per kind of
error, every known secret masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.errors import (
    BackendError,
    EnvplaneError,
    GateError,
    IsolationError,
    LockError,
    NotFound,
    Problem,
    SpecError,
    StateError,
    UsageError,
)
from envplane.secret import Secret, masking
from envplane.server import problems


@pytest.mark.parametrize(("error", "status", "kind"), [
    (UsageError("unknown environment 'x'", "known: test"), 400, "usage-error"),
    (SpecError([Problem("must be an integer", Path("envplane.yaml"), 14, "environments.staging.ports[0]")]),
     422, "spec-error"),
    (IsolationError([Problem("shares a port with staging")]), 422, "isolation-error"),
    (NotFound("no release v9.9.9 of app"), 404, "not-found"),
    (LockError("alice holds this instance"), 409, "lock-error"),
    (GateError("gates failed"), 409, "gate-error"),
    (BackendError("docker does not answer"), 502, "backend-error"),
    (StateError("cannot reach the state store"), 503, "state-error"),
    (EnvplaneError("the operation failed"), 409, "envplane-error"),
    (problems.Busy("16 jobs are running"), 429, "busy"),
])
def test_each_kind_of_error_has_its_status(error: EnvplaneError, status: int, kind: str) -> None:
    document = problems.of_error(error)
    assert document["status"] == status
    assert document["type"] == f"urn:envplane:problem:{kind}"
    assert document["detail"] == error.message and document["hint"] == error.hint
    problems.ProblemBody.model_validate(document)  # the schema OpenAPI documents


def test_a_spec_error_names_file_line_and_field() -> None:
    error = SpecError([Problem("must be an integer", Path("/srv/app/envplane.yaml"), 14,
                               "environments.staging.ports[0]", "write 8080")])
    [found] = problems.of_error(error)["problems"]
    assert found == {"message": "must be an integer", "file": "/srv/app/envplane.yaml", "line": 14,
                     "field": "environments.staging.ports[0]", "hint": "write 8080"}


def test_secret_values_are_masked_in_every_field() -> None:
    with masking():
        value = Secret("s3cr3t-value-123")
        text = f"login failed with password {value.reveal()}"
        error = SpecError([Problem(text, hint=f"try again without {value.reveal()}")])
        document = problems.of_error(error)
    assert "s3cr3t-value-123" not in str(document)
    assert "***" in document["detail"] and "***" in document["problems"][0]["hint"]


def test_openapi_documents_every_error_as_problem_json() -> None:
    schema = {"paths": {"/x/{a}": {"get": {"parameters": [{"name": "a"}], "responses": {
        "200": {"description": "ok", "content": {"application/json": {}}},
        "404": {"description": "nf", "content": {"application/json": {}}}}}}},
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}, "ProblemBody": {}}}}
    answers = problems.documented(schema)["paths"]["/x/{a}"]["get"]["responses"]
    assert answers["200"]["content"] == {"application/json": {}}
    for status in ("404", "422"):  # 422: the operation takes parameters
        assert list(answers[status]["content"]) == ["application/problem+json"]
    assert list(schema["components"]["schemas"]) == ["ProblemBody"]
