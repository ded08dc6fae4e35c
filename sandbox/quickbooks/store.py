"""In-memory QuickBooks companies: objects per entity, ids, SyncTokens, indexes, seed chart.

One ``Company`` per realm id. Objects are plain dicts holding ``Decimal`` amounts; ids and
``SyncToken`` are strings (notes §0). Every write bumps ``SyncToken`` and
``MetaData.LastUpdatedTime`` (notes §1.6) and is remembered for CDC (notes §2.3).

Query indexes (``INDEXED``): the lookups a connector makes per order (customer by email or
display name, document by DocNumber, payment by PaymentRefNum, item by name or SKU) are answered
from ``value.casefold() -> ids`` maps kept on every insert, replace and remove, so a 10,000-order
company answers them without scanning every object. They only narrow the candidates: the query
executor still applies every condition to them, so a result never differs from a scan.
"""

from __future__ import annotations

import copy
from decimal import Decimal

from sandbox.quickbooks.wire import Clock

# URL path segment (lower-case, notes §0) -> entity name on the wire.
ENTITIES = {name.lower(): name for name in (
    "Customer", "Vendor", "Employee", "Item", "Account", "PaymentMethod", "TaxCode", "TaxRate", "Term",
    "Invoice", "Payment", "SalesReceipt", "CreditMemo", "RefundReceipt", "Estimate",
)}

# DisplayName is unique across Customer, Vendor and Employee (notes §1.1); Item names among items.
NAME_GROUPS = {"Customer": ("names", "DisplayName"), "Vendor": ("names", "DisplayName"),
               "Employee": ("names", "DisplayName"), "Item": ("items", "Name"),
               "Account": ("accounts", "Name"), "PaymentMethod": ("methods", "Name")}

# The chart every new company starts with (ids are the ones tests and the demo may rely on).
# TaxCode/TaxRate are seeded separately by ``tax.seed`` with the published ids ("TAX", "NON", "2", ...).
SEED = {
    "Account": [
        {"Name": "Services", "AccountType": "Income", "AccountSubType": "ServiceFeeIncome"},
        {"Name": "Sales of Product Income", "AccountType": "Income", "AccountSubType": "SalesOfProductIncome"},
        {"Name": "Undeposited Funds", "AccountType": "Other Current Asset", "AccountSubType": "UndepositedFunds"},
        {"Name": "Discounts given", "AccountType": "Income", "AccountSubType": "DiscountsRefundsGiven"},
        {"Name": "Checking", "AccountType": "Bank", "AccountSubType": "Checking"},
        {"Name": "Accounts Receivable (A/R)", "AccountType": "Accounts Receivable",
         "AccountSubType": "AccountsReceivable"},
        {"Name": "Inventory Asset", "AccountType": "Other Current Asset", "AccountSubType": "Inventory"},
        {"Name": "Cost of Goods Sold", "AccountType": "Cost of Goods Sold",
         "AccountSubType": "SuppliesMaterialsCogs"},
        {"Name": "Shipping Income", "AccountType": "Income", "AccountSubType": "OtherPrimaryIncome"},
    ],
    "Item": [
        {"Name": "Services", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
        {"Name": "Shipping", "Type": "Service", "IncomeAccountRef": {"value": "9"}},
    ],
    "PaymentMethod": [
        {"Name": "Cash", "Type": "NON_CREDIT_CARD"},
        {"Name": "Check", "Type": "NON_CREDIT_CARD"},
        {"Name": "Credit Card", "Type": "CREDIT_CARD"},
    ],
}
UNDEPOSITED_FUNDS = "3"
# Account types money may be deposited to / refunded from (notes §1.4 "asset account", §1.5
# RefundReceipt "Bank or Other Current Asset").
DEPOSIT_ACCOUNT_TYPES = ("Bank", "Other Current Asset")
# ``CurrencyRef.name`` as QBO fills it (batch sample: ``{"name":"United States Dollar","value":"USD"}``).
CURRENCY_NAMES = {"USD": "United States Dollar", "EUR": "Euro", "GBP": "British Pound Sterling",
                  "CAD": "Canadian Dollar", "AUD": "Australian Dollar"}
SHIPPING_ITEM_ID = "SHIPPING_ITEM_ID"  # literal accepted on lines (notes §1.3, S-RUBY-319)

# Fields kept in a query index, per entity (see the module docstring). Only objects written
# through ``insert``/``replace`` are indexed, so entities seeded directly (TaxCode, TaxRate) are
# not listed and are scanned.
_PARTY = ("DisplayName", "PrimaryEmailAddr")
INDEXED = {"Customer": _PARTY, "Vendor": _PARTY, "Employee": _PARTY, "Item": ("Name", "Sku"),
           "Account": ("Name",), "PaymentMethod": ("Name",), "Payment": ("PaymentRefNum",),
           **{entity: ("DocNumber",) for entity in ("Invoice", "SalesReceipt", "CreditMemo", "RefundReceipt",
                                                    "Estimate")}}


def field_value(obj: dict, path: str):
    """The value a query compares for ``path`` (dotted, case-insensitive field names).

    Refs compare by id (``WHERE CustomerRef = '1'``) and e-mail fields by their address
    (``WHERE PrimaryEmailAddr = 'a@b.com'``, the form python-quickbooks' maintainer documents).
    """
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        if part in value:
            value = value[part]
            continue
        match = next((k for k in value if k.lower() == part.lower()), None)
        if match is None:
            return None
        value = value[match]
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    if isinstance(value, dict) and "Address" in value:
        return value["Address"]
    return value


class Company:
    """One QuickBooks company (realm): its objects and the indexes the rules need."""

    def __init__(self, realm: str, clock: Clock, settings: dict | None = None):
        self.realm = realm
        self.clock = clock
        self.created = clock.meta_stamp()
        self.settings = {"home_currency": "USD", "currencies": ["USD"],
                         "duplicate_docnumber_fault": False}
        self.settings.update(settings or {})
        self.objects: dict[str, dict[str, dict]] = {name: {} for name in ENTITIES.values()}
        self.next_id: dict[str, int] = {}
        self.updated_at: dict[tuple[str, str], float] = {}
        self.deleted: dict[str, dict[str, dict]] = {}
        self.names: dict[str, dict[str, str]] = {}
        # Query indexes (INDEXED): (entity, field) -> casefolded string value -> ids; ``odd`` holds
        # the ids whose value is there but not a string (a query compares those as numbers).
        self.index: dict[tuple[str, str], dict[str, set[str]]] = {}
        self.odd: dict[tuple[str, str], set[str]] = {}
        self.customer_docs: dict[str, set[str]] = {}
        self.doc_numbers: dict[str, int] = {}
        # (TxnType, TxnId) -> {payment id: amount applied}; balances are derived from this.
        self.links: dict[tuple[str, str], dict[str, Decimal]] = {}
        # Batch isolation (notes §2.2): objects created by earlier items of the running batch are
        # hidden from later items; ``inserted`` (a list only while a batch runs) records what
        # the current item created.
        self.hidden: set[tuple[str, str]] = set()
        self.inserted: list[tuple[str, str]] | None = None

    # -- reads -----------------------------------------------------------------------------
    def get(self, entity: str, object_id) -> dict | None:
        if self.hidden and (entity, str(object_id)) in self.hidden:
            return None
        return self.objects[entity].get(str(object_id))

    def all(self, entity: str) -> list[dict]:
        if self.hidden:
            return [obj for key, obj in self.objects[entity].items() if (entity, key) not in self.hidden]
        return list(self.objects[entity].values())

    def name_owner(self, entity: str, name: str) -> tuple[str, str] | None:
        """Who holds ``name`` in ``entity``'s uniqueness group (case-insensitive), if anyone."""
        group = NAME_GROUPS.get(entity)
        if not group or not name:
            return None
        owner = self.names.get(group[0], {}).get(name.casefold())
        return tuple(owner.split(":", 1)) if owner else None  # type: ignore[return-value]

    # -- writes ----------------------------------------------------------------------------
    def insert(self, entity: str, obj: dict) -> dict:
        """Store a new object: assign ``Id``, ``SyncToken`` "0", ``MetaData``."""
        number = self.next_id.get(entity, 1)
        self.next_id[entity] = number + 1
        object_id = str(number)
        stamp = self.clock.meta_stamp()
        obj["Id"] = object_id
        obj["SyncToken"] = "0"
        obj["domain"] = "QBO"
        obj["sparse"] = False
        obj["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        self.objects[entity][object_id] = obj
        if self.inserted is not None:
            self.inserted.append((entity, object_id))
        self._index(entity, None, obj)
        self.updated_at[(entity, object_id)] = self.clock.now()
        return obj

    def replace(self, entity: str, obj: dict) -> dict:
        """Store a new version of an existing object, bumping ``SyncToken``."""
        object_id = obj["Id"]
        old = self.objects[entity][object_id]
        obj["SyncToken"] = str(int(old["SyncToken"]) + 1)
        obj["domain"] = "QBO"
        obj["sparse"] = False
        obj["MetaData"] = {"CreateTime": old["MetaData"]["CreateTime"],
                           "LastUpdatedTime": self.clock.meta_stamp()}
        self.objects[entity][object_id] = obj
        self._index(entity, old, obj)
        self.updated_at[(entity, object_id)] = self.clock.now()
        return obj

    def touch(self, entity: str, obj: dict) -> None:
        """Record a server-side change (e.g. a payment lowered a Balance): SyncToken + 1."""
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj["MetaData"]["LastUpdatedTime"] = self.clock.meta_stamp()
        self.updated_at[(entity, obj["Id"])] = self.clock.now()

    def remove(self, entity: str, object_id: str) -> dict:
        """Delete an object; keep a ``Deleted`` stub for CDC (notes §2.3)."""
        old = self.objects[entity].pop(object_id)
        self._index(entity, old, None)
        stub = {"status": "Deleted", "domain": "QBO", "Id": object_id,
                "MetaData": {"LastUpdatedTime": self.clock.meta_stamp()}}
        self.deleted.setdefault(entity, {})[object_id] = stub
        self.updated_at[(entity, object_id)] = self.clock.now()
        return old

    def next_doc_number(self, entity: str) -> str:
        """Auto-numbering when DocNumber is omitted or ``AUTO_GENERATE`` (notes §1.3)."""
        number = self.doc_numbers.get(entity, 1001)
        self.doc_numbers[entity] = number + 1
        return str(number)

    def with_doc_number(self, entity: str, number: str) -> list[dict]:
        """Documents of ``entity`` whose DocNumber equals ``number`` (case-insensitive)."""
        ids = self.indexed(entity, "DocNumber", str(number)) or set()
        return [doc for doc in (self.objects[entity][i] for i in sorted(ids, key=int) if (entity, i) not in self.hidden)
                if str(doc["DocNumber"]).casefold() == str(number).casefold()]

    def indexed(self, entity: str, field: str, value: str) -> set[str] | None:
        """Ids of ``entity`` whose ``field`` may equal ``value`` (case-insensitive), or None when
        ``field`` is not indexed for ``entity``. Includes ids with a non-string value; hidden ones too."""
        name = next((f for f in INDEXED.get(entity, ()) if f.lower() == field.lower()), None)
        if name is None:
            return None
        found = self.index.get((entity, name), {}).get(value.casefold(), set())
        odd = self.odd.get((entity, name))
        return found | odd if odd else set(found)

    def invoices_of(self, customer_id: str) -> list[dict]:
        return [self.objects["Invoice"][i] for i in self.customer_docs.get(customer_id, ())]

    def _index(self, entity: str, old: dict | None, new: dict | None) -> None:
        for doc, add in ((old, False), (new, True)):
            for name in INDEXED.get(entity, ()) if doc else ():
                value = field_value(doc, name)
                if value is None:
                    continue
                if isinstance(value, str):
                    bucket = self.index.setdefault((entity, name), {}).setdefault(value.casefold(), set())
                else:
                    bucket = self.odd.setdefault((entity, name), set())
                (bucket.add if add else bucket.discard)(doc["Id"])
            if entity == "Invoice" and doc and doc.get("CustomerRef"):
                bucket = self.customer_docs.setdefault(doc["CustomerRef"]["value"], set())
                (bucket.add if add else bucket.discard)(doc["Id"])
        group = NAME_GROUPS.get(entity)
        if not group:
            return
        index = self.names.setdefault(group[0], {})
        if old and old.get(group[1]):
            index.pop(str(old[group[1]]).casefold(), None)
        if new and new.get(group[1]):
            index[str(new[group[1]]).casefold()] = f"{entity}:{new['Id']}"

    # -- payment links ---------------------------------------------------------------------
    def applied(self, txn_type: str, txn_id: str, except_payment: str | None = None) -> Decimal:
        """Sum applied to a transaction by payments (optionally ignoring one payment)."""
        return sum((amount for pid, amount in self.links.get((txn_type, txn_id), {}).items()
                    if pid != except_payment), Decimal(0))

    def company_info(self) -> dict:
        """``GET …/companyinfo/{realm}`` (python-quickbooks ``CompanyInfo.get``); emulator values."""
        return {"CompanyName": f"Sandbox Company {self.realm}", "LegalName": f"Sandbox Company {self.realm}",
                "Country": "US", "SupportedLanguages": "en", "Id": "1", "SyncToken": "0", "domain": "QBO",
                "sparse": False, "MetaData": {"CreateTime": self.created, "LastUpdatedTime": self.created}}

    def preferences(self) -> dict:
        """``GET …/preferences``: the currency and numbering prefs the rules above depend on."""
        currencies = self.settings["currencies"]
        return {"CurrencyPrefs": {"MultiCurrencyEnabled": len(currencies) > 1,
                                  "HomeCurrency": {"value": self.settings["home_currency"]}},
                "SalesFormsPrefs": {"AllowShipping": True, "CustomTxnNumbers": True},
                "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": False,
                "MetaData": {"CreateTime": self.created, "LastUpdatedTime": self.created}}

    def export(self) -> dict:
        """All objects, per entity, for ``GET /_sandbox/state``."""
        return {entity: copy.deepcopy(list(objs.values())) for entity, objs in self.objects.items()}
