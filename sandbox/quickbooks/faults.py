"""QuickBooks ``Fault`` bodies, JSON and XML, and the catalogue of errors the emulator raises.

Shape (notes §2.6): ``{"Fault":{"Error":[{"Message","Detail","code","element"}],"type"},"time"}``;
``code`` is a string, ``element`` optional. Codes and texts come from the notes and the
fixtures in ``shared/fixtures/quickbooks/errors/``; where the notes give no exact text the
wording here is marked *emulator wording*.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr


class Fault(Exception):
    """An error answered as a QuickBooks ``Fault`` (HTTP ``status``, usually 400)."""

    def __init__(self, code: str, message: str, detail: str, element: str | None = None,
                 fault_type: str = "ValidationFault", status: int = 400):
        super().__init__(f"{code} {message}: {detail}")
        self.errors = [{"Message": message, "Detail": detail, "code": str(code)}]
        if element is not None:
            self.errors[0]["element"] = element
        self.fault_type = fault_type
        self.status = status

    @property
    def code(self) -> str:
        return self.errors[0]["code"]

    def body(self) -> dict:
        """The ``Fault`` object (without ``time``), as in a batch item or a response."""
        return {"Error": [dict(e) for e in self.errors], "type": self.fault_type}

    def envelope(self, stamp: str) -> dict:
        return {"Fault": self.body(), "time": stamp}

    def xml(self, stamp: str) -> str:
        """The same fault as an ``IntuitResponse`` XML document (fixtures ``errors/*.xml``)."""
        errors = []
        for error in self.errors:
            element = f" element={quoteattr(error['element'])}" if "element" in error else ""
            errors.append(f"<Error code={quoteattr(error['code'])}{element}>"
                          f"<Message>{escape(error['Message'])}</Message>"
                          f"<Detail>{escape(error['Detail'])}</Detail></Error>")
        return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{stamp}">'
                f'<Fault type={quoteattr(self.fault_type)}>{"".join(errors)}</Fault></IntuitResponse>')


# -- catalogue -------------------------------------------------------------------------------

def duplicate_name(detail_suffix: str = "null") -> Fault:
    """6240, HTTP 400, exactly ``errors/fault.6240.duplicate-name.json`` (no ``element``)."""
    return Fault("6240", "Duplicate Name Exists Error", f"The name supplied already exists. : {detail_suffix}")


def duplicate_name_long() -> Fault:
    """6240 as the batch sample and the XML answers show it: longer ``Detail``, ``element: ""``.

    ``intuit-docs/batch.response.json`` (S-BATCH-SAMPLE), ``errors/fault.6240.duplicate-name.php-sdk-issue.xml``
    and ``errors/quickbooks-ruby.customer_duplicate_error.xml`` (notes §1.1 "Other observed Detail strings").
    """
    return Fault("6240", "Duplicate Name Exists Error",
                 "The name supplied already exists. : Another customer, vendor or employee is already using "
                 "this name. Please use a different name.", element="")


def as_observed(fault: Fault) -> Fault:
    """The variant of ``fault`` seen in batch items and XML bodies (only 6240 differs)."""
    return duplicate_name_long() if fault.code == "6240" else fault


def lowercase_envelope(fault: Fault, epoch_ms: int) -> dict:
    """The alternate lower-case body, as ``errors/fault.6240.duplicate-name.lowercase-variant.json``."""
    errors = [{"message": e["Message"], "detail": e["Detail"], "code": e["code"]} for e in fault.errors]
    return {"fault": {"error": errors, "type": fault.fault_type}, "batchItemResponse": [],
            "attachableResponse": [], "time": epoch_ms, "cdcresponse": []}


def no_name() -> Fault:
    """6080 "No Name Provided", text of the IPP error-code table (notes §1.1, S-IPP-CODES)."""
    return Fault("6080", "No Name Provided",
                 "Title, GivenName, MiddleName, FamilyName, DisplayName, Suffix - one of these must be non-empty",
                 element="")


def not_found(entity: str = "") -> Fault:
    """610 Object Not Found, text from ``intuit-docs/batch.response.json``."""
    return Fault("610", "Object Not Found",
                 "Object Not Found : Something you're trying to use has been made inactive. "
                 "Check the fields with accounts, customers, items, vendors or employees.", element="")


def stale_object() -> Fault:
    """5010 Stale Object Error, HTTP 400 (notes §1.6, batch sample)."""
    return Fault("5010", "Stale Object Error",
                 "Stale Object Error : You and root were working on this at the same time. root "
                 "finished before you did, so your work was not saved.", element="")


def required(field: str) -> Fault:
    """2020 Required param missing (notes §2.6; detail is emulator wording)."""
    return Fault("2020", "Required param missing, need to supply the required value for the API",
                 f"Required parameter {field} is missing in the request", element=field)


def invalid_reference(field: str, value) -> Fault:
    """2500 Invalid Reference Id (notes §2.6; detail is emulator wording)."""
    return Fault("2500", "Invalid Reference Id",
                 f"Invalid Reference Id : {field} reference {value!s} does not exist", element=field)


def too_long(field: str, limit: int) -> Fault:
    """2050 Length exceeds limit, text as ``errors/quickbooks-ruby.fault.xml``."""
    return Fault("2050", "Length exceeds limit", f"Length of the field exceeds {limit} chars", element=field)


def invalid_property(detail: str) -> Fault:
    """2010 for bodies that are not JSON objects or carry a bad value (emulator wording)."""
    return Fault("2010", "Request has invalid or unsupported property", f"Property Name:{detail}", element="")


def amount_mismatch(amount) -> Fault:
    """6070: Amount must equal Qty * UnitPrice, text of the IPP error-code table (notes §1.3, S-IPP-CODES)."""
    return Fault("6070", "Amount calculation incorrect in the request",
                 f"Amount is not equal to Qty * UnitPrice. Supplied value:{amount}", element="")


def invalid_line_tax_code(value: str) -> Fault:
    """6100, text of the IPP error-code table (notes §1.3, S-IPP-CODES); ``element`` as observed."""
    return Fault("6100", "Invalid Line TaxCode in the request",
                 f"Valid Line TaxCodes for US should be TAX or NON. Supplied value:{value}",
                 element="Line.SalesItemLineDetail.TaxCodeRef")


def business(detail: str) -> Fault:
    """6000 business validation error (notes §2.6)."""
    return Fault("6000", "A business validation error has occurred while processing your request",
                 f"Business Validation Error: {detail}", element="")


def duplicate_doc_number(doc_number: str) -> Fault:
    """6140 Duplicate Doc Num (notes §1.3; only when the company pref is on)."""
    return Fault("6140", "Duplicate Document Number Error",
                 f"Duplicate Document Number Error : You must specify a different number. "
                 f"This number has already been used. DocNumber={doc_number}", element="")


def query_parse(detail: str) -> Fault:
    """4000 query that does not parse (notes §2.1)."""
    return Fault("4000", "Error parsing query", f"QueryParserError: {detail}", element="")


def query_invalid(detail: str) -> Fault:
    """4001 query that parses but is invalid, as ``errors/quickbooks-ruby.query_validation_error.xml``."""
    return Fault("4001", "Invalid query", f"QueryValidationError: {detail}", element="")


def unsupported(detail: str) -> Fault:
    """500 Unsupported Operation (python-quickbooks maps 500-599 to UnsupportedException)."""
    return Fault("500", "Unsupported Operation", f"Operation {detail} is not supported.", element="")


def throttled() -> Fault:
    """3001 ThrottleExceeded, HTTP 429 (``errors/quickbooks-ruby.too_many_requests_error.xml``)."""
    return Fault("3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                 "The request limit was reached.  Try again later", fault_type="SERVICE", status=429)


def server_error() -> Fault:
    """10000 SystemFault (``errors/quickbooks-ruby.generic_error.xml``), for injected 5xx."""
    return Fault("10000", "An application error has occurred while processing your request",
                 "System Failure Error: An unexpected error occurred while accessing or saving your data. "
                 "Please wait a few minutes and try again.", fault_type="SystemFault", status=500)


# -- authentication (lower-case Java-bean envelope or XML; notes §2.6 quirks) -----------------

def auth_failed_json(epoch_ms: int, detail: str = "Token expired or invalid") -> dict:
    """401 body in the shape of ``errors/fault.401.authentication.lowercase.json``."""
    return {"warnings": None, "intuitObject": None,
            "fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                 "detail": detail, "code": "3200", "element": None}],
                      "type": "AUTHENTICATION"},
            "report": None, "queryResponse": None, "batchItemResponse": [], "attachableResponse": [],
            "syncErrorResponse": None, "requestId": None, "time": epoch_ms, "status": None, "cdcresponse": []}


def auth_failed_xml() -> Fault:
    """401 as XML, ``errors/fault.401.authentication.xml``."""
    return Fault("100", "General Authentication Error",
                 "AuthenticationErrorGeneral: SRV-110-Authentication Failure , statusCode: 401",
                 fault_type="AuthenticationFault", status=401)


def forbidden_json(epoch_ms: int) -> dict:
    """403 body for a token of another company, shape of ``errors/fault.403.authorization.lowercase.json``."""
    return {"warnings": None, "intuitObject": None,
            "fault": {"error": [{"message": "message=AuthorizationFailed; errorCode=003100; statusCode=403",
                                 "detail": None, "code": "3100", "element": None}],
                      "type": "SERVICE"},
            "report": None, "queryResponse": None, "batchItemResponse": [], "attachableResponse": [],
            "syncErrorResponse": None, "requestId": None, "time": epoch_ms, "status": None, "cdcresponse": []}
