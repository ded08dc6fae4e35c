"""US sales tax: the seeded ``TaxCode``/``TaxRate`` lists, line tax codes and the computed tax.

What the notes and fixtures say (notes §1.3):
- On a US company a line's ``SalesItemLineDetail.TaxCodeRef`` is ``TAX`` or ``NON``; anything else
  is error **6100** "Invalid Line TaxCode in the request" (S-IPP-CODES table text).
- The document's ``TxnTaxDetail.TxnTaxCodeRef`` names a real tax code (a group of rates, e.g. Id
  "2" California in ``taxcode.query.response.json``); "US: supply only the tax code; QBO computes".
  When the client sends ``TotalTax`` it is kept as sent (the connector passes its store's tax).
- ``TaxCode`` and ``TaxRate`` are read-only through their own endpoints (python-quickbooks:
  "TaxRates cannot be created or modified with the TaxRate object"; TaxService creates them),
  and CDC does not serve them (notes §2.3).

The seed copies the company of ``taxcode.query.response.json``: pseudo codes ``TAX``/``NON`` (no
``SyncToken``/``Active``, as published), group codes "2" California (rate "3") and "3" Tucson
(rates "1" and "2"). California's 8 % is the invoice read sample's ``TaxPercent``; the two
Arizona percentages are emulator values (no source gives them).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sandbox.quickbooks import faults
from sandbox.quickbooks.store import Company
from sandbox.quickbooks.wire import to_decimal

CENT = Decimal("0.01")
US_LINE_CODES = ("TAX", "NON")
READ_ONLY_ENTITIES = ("TaxCode", "TaxRate")

TAX_RATES = [
    {"Id": "1", "Name": "AZ State tax", "RateValue": Decimal("5.6")},   # emulator value
    {"Id": "2", "Name": "Tucson City", "RateValue": Decimal("2.6")},    # emulator value
    {"Id": "3", "Name": "California", "RateValue": Decimal("8")},       # invoice.read TaxPercent 8
]
TAX_GROUPS = [("2", "California", ["3"]), ("3", "Tucson", ["1", "2"])]


def seed(company: Company) -> None:
    """Put the published tax list into a new company with its published ids."""
    stamp = company.created
    meta = {"CreateTime": stamp, "LastUpdatedTime": stamp}
    rates = company.objects["TaxRate"]
    for rate in TAX_RATES:
        rates[rate["Id"]] = {**rate, "Description": rate["Name"], "Active": True, "SpecialTaxType": "NONE",
                             "DisplayType": "ReadOnly", "AgencyRef": {"value": "1"},
                             "SyncToken": "0", "domain": "QBO", "sparse": False, "MetaData": dict(meta)}
    codes = company.objects["TaxCode"]
    for code, taxable in (("TAX", True), ("NON", False)):
        # Pseudo codes as published: no SyncToken, domain, sparse or Active.
        codes[code] = {"TaxGroup": False, "Name": code, "Taxable": taxable, "Description": code,
                       "Id": code, "MetaData": dict(meta)}
    for code_id, name, rate_ids in TAX_GROUPS:
        details = [{"TaxTypeApplicable": "TaxOnAmount",
                    "TaxRateRef": {"name": rates[r]["Name"], "value": r}, "TaxOrder": 0} for r in rate_ids]
        codes[code_id] = {"SyncToken": "0", "domain": "QBO", "TaxGroup": True, "Name": name, "Taxable": True,
                          "PurchaseTaxRateList": {"TaxRateDetail": []}, "sparse": False, "Active": True,
                          "Description": name, "MetaData": dict(meta), "Id": code_id,
                          "SalesTaxRateList": {"TaxRateDetail": details}}
    company.next_id["TaxCode"] = company.next_id["TaxRate"] = 4


def read_only(entity: str) -> None:
    """Writes to TaxCode/TaxRate are not supported (500, python-quickbooks UnsupportedException)."""
    if entity in READ_ONLY_ENTITIES:
        raise faults.unsupported(f"write of {entity} (use TaxService)")


def line_code(detail: dict, item: dict | None) -> bool:
    """Check a line's ``TaxCodeRef``; returns whether the line is taxable (6100 on a bad code).

    When absent it defaults from the item's ``Taxable`` flag: the published create request sends
    no ``TaxCodeRef`` and the create response shows ``{"value": "NON"}`` on that line.
    """
    ref = detail.get("TaxCodeRef")
    if not ref or not ref.get("value"):
        ref = {"value": "TAX" if (item or {}).get("Taxable") else "NON"}
    value = str(ref["value"])
    if value not in US_LINE_CODES:
        raise faults.invalid_line_tax_code(value)
    detail["TaxCodeRef"] = {"value": value}
    return value == "TAX"


def apply(company: Company, obj: dict, taxable_base: Decimal) -> Decimal:
    """Complete ``TxnTaxDetail``; returns ``TotalTax``.

    A supplied ``TotalTax`` is kept. Otherwise, with a ``TxnTaxCodeRef`` (2500 when unknown),
    one ``TaxLine`` per rate of that code over the taxable lines is computed, as in the invoice
    read sample (``TaxPercent``, ``NetAmountTaxable``, ``PercentBased``).
    """
    detail = obj.get("TxnTaxDetail") or {}
    try:
        supplied = to_decimal(detail.get("TotalTax"))
    except ValueError:
        raise faults.invalid_property(f"TxnTaxDetail.TotalTax value {detail.get('TotalTax')}") from None
    ref = detail.get("TxnTaxCodeRef")
    code = None
    if ref and ref.get("value"):
        code = company.get("TaxCode", str(ref["value"]))
        if code is None or not code.get("TaxGroup"):
            raise faults.invalid_reference("TxnTaxDetail.TxnTaxCodeRef", ref["value"])
        detail["TxnTaxCodeRef"] = {"value": code["Id"]}
    else:
        detail.pop("TxnTaxCodeRef", None)
    if supplied is not None or code is None:
        detail["TotalTax"] = supplied if supplied is not None else Decimal(0)
        obj["TxnTaxDetail"] = detail
        return detail["TotalTax"]
    lines, total = [], Decimal(0)
    for rate_detail in code["SalesTaxRateList"]["TaxRateDetail"]:
        rate = company.get("TaxRate", rate_detail["TaxRateRef"]["value"])
        amount = (taxable_base * rate["RateValue"] / 100).quantize(CENT, ROUND_HALF_UP)
        total += amount
        lines.append({"DetailType": "TaxLineDetail", "Amount": amount,
                      "TaxLineDetail": {"NetAmountTaxable": taxable_base, "TaxPercent": rate["RateValue"],
                                        "TaxRateRef": {"value": rate["Id"]}, "PercentBased": True}})
    detail["TotalTax"] = total
    detail["TaxLine"] = lines
    obj["TxnTaxDetail"] = detail
    return total
