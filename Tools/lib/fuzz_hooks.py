"""Schemathesis hooks for Tools/fuzz: make schema-valid requests behave like a real client's.

The contract declares three things a schema cannot express, and a well-formed but stale value of
each is refused correctly by the server. Without these hooks schemathesis' positive-data check
reads those refusals as "valid data rejected"; with them, the positive cases reach the logic:

- `Idempotency-Key`: a client mints a fresh key per logical request; the contract's example key
  reused with another body is `422 idempotency.key_reused`. Positive cases get a fresh UUID.
- `If-Match`: only the resource's current ETag is a valid precondition (`412
  precondition.failed` otherwise). Positive cases get the current ETag, read with a GET of the
  resource the operation acts on, as a client does before a conditional write.
- Opaque values only this API issues: a list's `cursor` (`400 pagination.invalid_cursor`) and
  the sign-in callback's `state` (`400 auth.invalid_callback`). Their refusal is not counted
  against positive-data acceptance; they are still sent, so the server's handling of foreign
  values stays fuzzed for server errors and conformance.

Rules the contract states in prose because JSON Schema cannot express them (across fields or
parameters, or inside a CSV file) are refused with exact, documented errors; a positive case that
breaks one is not "valid data rejected" either. `DOCUMENTED_RULES` lists each with where the
contract states it; a refusal is only forgiven when every error it lists is one of them.

Negative cases are left exactly as generated.
"""

import os
import re
import uuid

import requests
import schemathesis

BASE = os.environ["SITREP_FUZZ_BASE"]
AUTHORIZATION = os.environ.get("SITREP_FUZZ_AUTHORIZATION", "")
_session = requests.Session()


def _is_positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return meta is None or meta.generation.mode.is_positive


def _header(headers, name):
    for key in list(headers or {}):
        if key.lower() == name.lower():
            return key
    return None


def _resource_path(case) -> str:
    """The path whose GET answers the ETag an If-Match on this operation is compared with."""
    path = case.formatted_path
    template = case.operation.path
    # `POST /v1/briefings/{id}/approve` and the like act on `/v1/briefings/{id}`.
    if case.method.upper() == "POST" and re.search(r"\}/[a-z-]+$", template):
        path = path.rsplit("/", 1)[0]
    return path


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _is_positive(case):
        return
    headers = case.headers
    if headers is None:
        return
    key = _header(headers, "Idempotency-Key")
    if key is not None:
        headers[key] = str(uuid.uuid4())
    match = _header(headers, "If-Match")
    if match is not None:
        auth = {"Authorization": AUTHORIZATION} if AUTHORIZATION else {}
        try:
            response = _session.get(BASE + _resource_path(case), headers=auth, timeout=10)
        except requests.RequestException:
            return
        etag = response.headers.get("ETag")
        if response.status_code == 200 and etag:
            headers[match] = etag


# Problem codes that mean "this opaque value was not issued by this API", and the query parameter
# that carries the value.
OPAQUE_REFUSALS = {"pagination.invalid_cursor": "cursor", "auth.invalid_callback": "state"}


# (pointer, message) of each refusal for a rule the contract states in prose, and where it does.
DOCUMENTED_RULES = {
    # ActionPatch: "At least one field."
    ("/body", "must change at least one field"),
    # ActionPatch.ownerId / ownerName: "send `ownerName` with it" / "send `ownerId` with it".
    ("/body/ownerId", "ownerId and ownerName change together; send both"),
    ("/body/ownerName", "ownerId and ownerName change together; send both"),
    # RecipientInput/RecipientUpdate.email: "required when `channels` lists `email`".
    ("/body/email", "is required when channels lists email"),
    # listSignals `until`: "Must be after `since`".
    ("/query/since", "must be before until"),
}
# The same, for rules whose message names the other item: (pointer pattern, message pattern).
DOCUMENTED_RULE_PATTERNS = [
    # ingestSignals: "The same `(source, sourceId)` twice in one batch is a `422`".
    (re.compile(r"/body/items/[0-9]+/sourceId"), re.compile(r"repeats \(source, sourceId\) of item [0-9]+")),
]


def _documented(error) -> bool:
    pointer, message = error.get("pointer", ""), error.get("message", "")
    if (pointer, message) in DOCUMENTED_RULES:
        return True
    return any(p.fullmatch(pointer) and m.fullmatch(message) for p, m in DOCUMENTED_RULE_PATTERNS)
# The treasury upload's body is a CSV file (a string to JSON Schema): its header, syntax and values
# are the rules the operation's description lists, refused with `/rows...` pointers.
CSV_OPERATION = ("POST", "/v1/treasury/uploads")


def _documented_refusal(case, response) -> bool:
    try:
        problem = response.json()
    except ValueError:
        return False
    errors = problem.get("errors") or []
    if not errors:
        return False
    if (case.method.upper(), case.operation.path) == CSV_OPERATION and response.status_code == 422:
        return all(e.get("pointer", "").startswith("/rows") for e in errors)
    return all(_documented(e) for e in errors)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure except a positive-data complaint about a refused foreign opaque value
    or a documented rule the schema cannot express."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code not in (400, 422):
        return True
    try:
        code = response.json().get("code")
    except ValueError:
        return True
    parameter = OPAQUE_REFUSALS.get(code)
    if parameter is not None and parameter in (case.query or {}):
        return False
    return not _documented_refusal(case, response)
