"""The one error table: each known vendor error gets its intent and a sentence for the admin."""

from __future__ import annotations

import pytest

from adapters.error_table import HUBSPOT_CATEGORIES, QUICKBOOKS_FAULTS, hubspot_error, quickbooks_error
from connector.errors import PausedError, PermanentError, RetryableError


@pytest.mark.parametrize("code, kind", [(3001, RetryableError), (10000, RetryableError), (5010, PermanentError),
                                        (6240, PermanentError), (6070, PermanentError), (6140, PermanentError),
                                        (2050, PermanentError), (6000, PermanentError), (3200, PausedError)])
def test_quickbooks_faults_map_to_their_intent(code, kind):
    error = quickbooks_error(code, f"fault {code}", status=400)
    assert isinstance(error, kind) and error.code == str(code) and error.what_to_do


@pytest.mark.parametrize("status, category, kind", [
    (429, None, RetryableError), (502, None, RetryableError), (None, None, RetryableError),
    (400, "VALIDATION_ERROR", PermanentError), (409, None, PermanentError), (401, None, PausedError),
    (403, "MISSING_SCOPES", PausedError), (404, "OBJECT_NOT_FOUND", PermanentError)])
def test_hubspot_answers_map_to_their_intent(status, category, kind):
    assert isinstance(hubspot_error(status, category, "m"), kind)


def test_unknown_errors_fall_back_by_status_and_every_entry_says_what_to_do():
    assert isinstance(quickbooks_error(None, "gateway", status=503), RetryableError)
    assert isinstance(quickbooks_error(7777, "new", status=400), PermanentError)
    for entry in list(QUICKBOOKS_FAULTS.values()) + list(HUBSPOT_CATEGORIES.values()):
        assert len(entry.what_to_do) > 20
