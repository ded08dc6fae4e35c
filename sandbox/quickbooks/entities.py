"""Writes to one company: create, full/sparse update, delete, void; rules for names, items, accounts.

Transaction rules (invoice, sales receipt, credit memo, refund receipt, payment) live in
``transactions.py``; this module dispatches to them. Every rule raises a ``Fault``
before anything is stored, so a rejected write changes nothing.
"""

from __future__ import annotations

import copy

from sandbox.quickbooks import faults, tax, transactions
from sandbox.quickbooks.store import CURRENCY_NAMES, Company

COMMON_READ_ONLY = {"Id", "SyncToken", "MetaData", "domain", "sparse", "status"}
READ_ONLY = {
    "Customer": {"Balance", "BalanceWithJobs", "FullyQualifiedName", "Level"},
    "Item": {"FullyQualifiedName", "Level"},
    "Account": {"FullyQualifiedName", "CurrentBalance", "CurrentBalanceWithSubAccounts"},
}
NAME_PARTS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")
ITEM_TYPES = {"Inventory", "NonInventory", "Service", "Category", "Group", "Bundle"}


def strip_blanks(value):
    """Drop ``""`` and ``None`` values recursively.

    python-quickbooks serialises every default (``"DueDate": ""``, refs with ``"name": ""``,
    ``"TotalAmt": ""``; fixtures ``python-quickbooks-wire/``, notes §5); QBO treats them as absent.
    """
    if isinstance(value, dict):
        return {k: strip_blanks(v) for k, v in value.items() if v != "" and v is not None}
    if isinstance(value, list):
        return [strip_blanks(v) for v in value]
    return value


def _writable(entity: str, body: dict) -> dict:
    skip = COMMON_READ_ONLY | READ_ONLY.get(entity, set()) | transactions.READ_ONLY.get(entity, set())
    return {k: v for k, v in strip_blanks(body).items() if k not in skip}


# -- operations ----------------------------------------------------------------------------

def create(company: Company, entity: str, body: dict, allow_duplicate_docnum: bool = False) -> dict:
    """Validate and store a new object; returns it as stored."""
    tax.read_only(entity)
    obj = _writable(entity, body)
    obj = _prepare(company, entity, obj, None, allow_duplicate_docnum)
    stored = company.insert(entity, obj)
    transactions.after_write(company, entity, stored, None)
    return stored


def update(company: Company, entity: str, body: dict, allow_duplicate_docnum: bool = False) -> dict:
    """Full update (omitted writable fields become NULL) or sparse update (notes §1.6)."""
    tax.read_only(entity)
    old = _current(company, entity, body)
    sparse = body.get("sparse") in (True, "true")
    if sparse:
        obj = copy.deepcopy({k: v for k, v in old.items() if k not in COMMON_READ_ONLY})
        obj.update(_writable(entity, body))
    else:
        obj = _writable(entity, body)
    obj["Id"] = old["Id"]
    obj = _prepare(company, entity, obj, old, allow_duplicate_docnum)
    stored = company.replace(entity, obj)
    transactions.after_write(company, entity, stored, old)
    return stored


def delete(company: Company, entity: str, body: dict) -> dict:
    """``?operation=delete``: answers ``{"status":"Deleted","domain":"QBO","Id"}`` (fixture)."""
    tax.read_only(entity)
    if entity in ("Customer", "Vendor", "Employee", "Item", "Account", "PaymentMethod"):
        # Name-list entities are made inactive, not deleted.
        raise faults.unsupported(f"delete for {entity}")
    old = _current(company, entity, body)
    transactions.before_delete(company, entity, old)
    company.remove(entity, old["Id"])
    transactions.after_write(company, entity, None, old)
    return {"status": "Deleted", "domain": "QBO", "Id": old["Id"]}


def void(company: Company, entity: str, body: dict) -> dict:
    """Invoice ``operation=void``; Payment/SalesReceipt ``operation=update&include=void``."""
    old = _current(company, entity, body)
    obj = transactions.voided(company, entity, old)
    stored = company.replace(entity, obj)
    transactions.after_write(company, entity, stored, old)
    return stored


def _current(company: Company, entity: str, body: dict) -> dict:
    object_id = body.get("Id")
    if object_id in (None, ""):
        raise faults.required("Id")
    old = company.get(entity, str(object_id))
    if old is None:
        raise faults.not_found(entity)
    token = body.get("SyncToken")
    if token in (None, ""):
        raise faults.required("SyncToken")
    if str(token) != old["SyncToken"]:
        raise faults.stale_object()
    return old


def _prepare(company: Company, entity: str, obj: dict, old: dict | None, allow_dup: bool) -> dict:
    if entity in ("Customer", "Vendor", "Employee"):
        return _party(company, entity, obj)
    if entity == "Item":
        return _item(company, obj, old)
    if entity in ("Account", "PaymentMethod"):
        return _named(company, entity, obj)
    if entity in transactions.RULED:
        return transactions.prepare(company, entity, obj, old, allow_dup)
    return obj


# -- name-list entities ----------------------------------------------------------------------

def _check_unique(company: Company, entity: str, name: str, obj: dict) -> None:
    owner = company.name_owner(entity, name)
    if owner and owner != (entity, obj.get("Id")):
        raise faults.duplicate_name()


def _party(company: Company, entity: str, obj: dict) -> dict:
    """Customer/Vendor/Employee: DisplayName built if absent (6080), unique (6240), ≤500 (notes §1.1)."""
    name = obj.get("DisplayName")
    if not name:
        name = " ".join(str(obj[p]) for p in NAME_PARTS if obj.get(p))
        if not name:
            raise faults.no_name()
    if len(name) > 500:
        raise faults.too_long("DisplayName", 500)
    obj["DisplayName"] = name
    _check_unique(company, entity, name, obj)
    obj.setdefault("Active", True)
    obj["FullyQualifiedName"] = name
    obj.setdefault("PrintOnCheckName", name)
    if entity == "Customer":
        obj.setdefault("Job", False)
        obj.setdefault("BillWithParent", False)
        obj.setdefault("Taxable", False)
        currency = (obj.get("CurrencyRef") or {}).get("value") or company.settings["home_currency"]
        if currency not in company.settings["currencies"]:  # same rule (and wording) as transactions
            raise faults.business(f"Currency {currency} is not enabled for this company.")
        obj["CurrencyRef"] = {"value": currency, "name": CURRENCY_NAMES.get(currency, currency)}
        balance = transactions.customer_balance(company, obj.get("Id"))
        obj["Balance"] = balance
        obj["BalanceWithJobs"] = balance
    return obj


def _item(company: Company, obj: dict, old: dict | None) -> dict:
    """Item: Name ≤100 and unique; Service/NonInventory need IncomeAccountRef (notes §1.2)."""
    name = obj.get("Name")
    if not name:
        raise faults.required("Name")
    if len(name) > 100:
        raise faults.too_long("Name", 100)
    _check_unique(company, "Item", name, obj)
    item_type = obj.setdefault("Type", "Service")  # emulator default when omitted
    if item_type not in ITEM_TYPES:
        raise faults.invalid_property(f"Type {item_type}")
    if old is not None and old.get("Type") == "Inventory" and item_type != "Inventory":
        raise faults.business("You can't change the type of an inventory item.")
    if item_type in ("Service", "NonInventory", "Inventory"):
        transactions.account_ref(company, obj, "IncomeAccountRef", required=True)
    if item_type == "Inventory":
        transactions.account_ref(company, obj, "AssetAccountRef", required=True)
        transactions.account_ref(company, obj, "ExpenseAccountRef", required=True)
        for field in ("QtyOnHand", "InvStartDate"):
            if field not in obj:
                raise faults.required(field)
        obj["TrackQtyOnHand"] = True
    obj.setdefault("Active", True)
    obj["FullyQualifiedName"] = name
    obj.setdefault("UnitPrice", 0)
    if obj.get("Sku") and len(str(obj["Sku"])) > 100:
        raise faults.too_long("Sku", 100)
    return obj


def _named(company: Company, entity: str, obj: dict) -> dict:
    name = obj.get("Name")
    if not name:
        raise faults.required("Name")
    _check_unique(company, entity, name, obj)
    obj.setdefault("Active", True)
    if entity == "Account":
        if not obj.get("AccountType"):
            raise faults.required("AccountType")
        obj["FullyQualifiedName"] = name
        obj.setdefault("CurrentBalance", 0)
    else:
        obj.setdefault("Type", "NON_CREDIT_CARD")
    return obj
