"""Rules for sales transactions and payments: lines, server-computed totals, balances, voids.

Notes §1.3-§1.5. Totals are computed here, never taken from the client:
``TotalAmt = Σ SalesItemLine.Amount − Σ DiscountLine.Amount + TxnTaxDetail.TotalTax``
(the tax is accepted as supplied: the connector sends its store's tax). A
``SubTotalLineDetail`` line is added server-side. Invoice ``Balance`` is ``TotalAmt`` minus
what payments apply to it; a payment applied to an invoice bumps that invoice's ``SyncToken``.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox.quickbooks import faults, tax
from sandbox.quickbooks.store import CURRENCY_NAMES, DEPOSIT_ACCOUNT_TYPES, SHIPPING_ITEM_ID, UNDEPOSITED_FUNDS, Company
from sandbox.quickbooks.wire import to_decimal

CENT = Decimal("0.01")
SALES_DOCS = ("Invoice", "SalesReceipt", "CreditMemo", "RefundReceipt", "Estimate")
RULED = SALES_DOCS + ("Payment",)
READ_ONLY = {
    **{name: {"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "RemainingCredit"} for name in SALES_DOCS},
    "Payment": {"UnappliedAmt"},
}
# Which document kinds a Payment line may link, and the sign it counts with.
LINKABLE = {"Invoice": Decimal(1), "CreditMemo": Decimal(-1)}


def _amount(value, field: str) -> Decimal | None:
    try:
        return to_decimal(value)
    except ValueError:
        raise faults.invalid_property(f"{field} value {value!s} is not a number") from None


def _customer(company: Company, obj: dict, required: bool) -> dict | None:
    ref = obj.get("CustomerRef")
    if not ref or not ref.get("value"):
        if required:
            raise faults.required("CustomerRef")
        obj.pop("CustomerRef", None)
        return None
    customer = company.get("Customer", str(ref["value"]))
    if customer is None or not customer.get("Active", True):
        raise faults.invalid_reference("CustomerRef", ref["value"])
    obj["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
    return customer


def _ref(company: Company, obj: dict, field: str, entity: str, name_field: str = "Name") -> None:
    ref = obj.get(field)
    if not ref or not ref.get("value"):
        obj.pop(field, None)
        return
    target = company.get(entity, str(ref["value"]))
    if target is None:
        raise faults.invalid_reference(field, ref["value"])
    obj[field] = {"value": target["Id"], "name": target[name_field]}


def account_ref(company: Company, obj: dict, field: str, required: bool, types: tuple = ()) -> None:
    """Check an account reference exists (and is one of ``types``) and fill its ``name``.

    2020 when missing, 2500 when unknown, 6000 (emulator wording) when of the wrong type.
    """
    ref = obj.get(field)
    if not ref or not ref.get("value"):
        if required:
            raise faults.required(field)
        obj.pop(field, None)
        return
    account = company.get("Account", str(ref["value"]))
    if account is None:
        raise faults.invalid_reference(field, ref["value"])
    if types and account.get("AccountType") not in types:
        raise faults.business(f"{field} must be an account of type {' or '.join(types)}; "
                              f"{account['Name']} is {account.get('AccountType')}.")
    obj[field] = {"value": account["Id"], "name": account["Name"]}


def _currency(company: Company, obj: dict) -> None:
    home = company.settings["home_currency"]
    ref = obj.get("CurrencyRef") or {"value": home}
    if ref.get("value") not in company.settings["currencies"]:
        # Emulator wording: a currency the company has not enabled (DESIGN guarantee 7).
        raise faults.business(f"Currency {ref.get('value')} is not enabled for this company.")
    obj["CurrencyRef"] = {"value": ref["value"], "name": CURRENCY_NAMES.get(ref["value"], ref["value"])}


def _home_amounts(company: Company, obj: dict, field: str, amount: Decimal) -> None:
    """Foreign-currency documents carry home-currency copies: amount × ExchangeRate (notes §1.3)."""
    if obj["CurrencyRef"]["value"] == company.settings["home_currency"]:
        obj.pop(field, None)
        return
    rate = _amount(obj.get("ExchangeRate"), "ExchangeRate") or Decimal(1)
    obj["ExchangeRate"] = rate
    obj[field] = (amount * rate).quantize(CENT, ROUND_HALF_UP)


def prepare(company: Company, entity: str, obj: dict, old: dict | None, allow_dup: bool) -> dict:
    """Validate and complete one transaction before it is stored."""
    if entity == "Payment":
        return _payment(company, obj, old)
    return _sales_doc(company, entity, obj, old, allow_dup)


def _sales_doc(company: Company, entity: str, obj: dict, old: dict | None, allow_dup: bool) -> dict:
    _customer(company, obj, required=entity in ("Invoice", "CreditMemo", "Estimate"))
    _currency(company, obj)
    _doc_number(company, entity, obj, old, allow_dup)
    if len(obj.get("PrivateNote", "")) > 4000:
        raise faults.too_long("PrivateNote", 4000)
    lines = [line for line in obj.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
    if not lines:
        raise faults.business("You must fill out at least one split line.")
    subtotal, discount, taxable = Decimal(0), Decimal(0), Decimal(0)
    for number, line in enumerate(lines, start=1):
        line["Id"] = str(number)
        line["LineNum"] = number
        kind = line.get("DetailType")
        if kind == "SalesItemLineDetail":
            amount, taxed = _sales_line(company, line)
            subtotal += amount
            taxable += amount if taxed else 0
        elif kind == "DiscountLineDetail":
            discount += _discount_line(company, line, subtotal)
        elif kind == "GroupLineDetail":
            subtotal += _amount(line.get("Amount"), "Line.Amount") or Decimal(0)
        elif kind in ("DescriptionOnly", "DescriptionLineDetail"):
            line.pop("Amount", None)
        else:
            raise faults.invalid_property(f"Line.DetailType {kind}")
    lines.append({"DetailType": "SubTotalLineDetail", "Amount": subtotal, "SubTotalLineDetail": {}})
    obj["Line"] = lines
    total = subtotal - discount + tax.apply(company, obj, taxable)
    if total < 0:
        raise faults.business("Transaction total cannot be negative.")  # emulator wording
    obj["TotalAmt"] = total
    _home_amounts(company, obj, "HomeTotalAmt", total)
    obj.setdefault("TxnDate", company.clock.today())
    obj.setdefault("PrintStatus", "NotSet")
    obj.setdefault("EmailStatus", "NotSet")
    obj.setdefault("ApplyTaxAfterDiscount", False)
    if entity == "Invoice":
        obj.setdefault("DueDate", (date.fromisoformat(obj["TxnDate"][:10]) + timedelta(days=30)).isoformat())
        obj.setdefault("Deposit", 0)
        # Payment links are server-owned: rebuilt from what payments apply, whatever the client sent.
        obj["LinkedTxn"] = [link for link in obj.get("LinkedTxn") or [] if link.get("TxnType") != "Payment"]
        if "Id" in obj:
            obj["LinkedTxn"] += [{"TxnId": pid, "TxnType": "Payment"}
                                 for pid in company.links.get(("Invoice", obj["Id"]), {})]
        obj["Balance"] = total - (company.applied("Invoice", obj["Id"]) if "Id" in obj else 0)
        if obj["Balance"] < 0:
            raise faults.business("The invoice total is less than the payments applied to it.")
        _home_amounts(company, obj, "HomeBalance", obj["Balance"])
    elif entity == "CreditMemo":
        remaining = total - (company.applied("CreditMemo", obj["Id"]) if "Id" in obj else 0)
        obj["RemainingCredit"] = obj["Balance"] = remaining
    elif entity in ("SalesReceipt", "RefundReceipt"):
        obj["Balance"] = Decimal(0)
        if entity == "SalesReceipt":
            obj.setdefault("DepositToAccountRef", {"value": UNDEPOSITED_FUNDS})
        # RefundReceipt: required, Bank or Other Current Asset (notes §1.5).
        account_ref(company, obj, "DepositToAccountRef", required=True, types=DEPOSIT_ACCOUNT_TYPES)
        _ref(company, obj, "PaymentMethodRef", "PaymentMethod")
    return obj


def _doc_number(company: Company, entity: str, obj: dict, old: dict | None, allow_dup: bool) -> None:
    number = obj.get("DocNumber")
    if number in (None, "AUTO_GENERATE"):
        obj["DocNumber"] = old["DocNumber"] if old and old.get("DocNumber") else company.next_doc_number(entity)
        return
    number = str(number)
    if len(number) > 21:  # Finance.xsd "ValidRange: QBO: max=21" (notes §1.3)
        raise faults.too_long("DocNumber", 21)
    if company.settings.get("duplicate_docnumber_fault") and not allow_dup:
        if any(other["Id"] != obj.get("Id") for other in company.with_doc_number(entity, number)):
            raise faults.duplicate_doc_number(number)
    obj["DocNumber"] = number


def _sales_line(company: Company, line: dict) -> tuple[Decimal, bool]:
    """Check one sales line; returns its amount and whether it is taxable."""
    amount = _amount(line.get("Amount"), "Line.Amount")
    if amount is None:
        raise faults.required("Line.Amount")
    line["Amount"] = amount
    detail = line.setdefault("SalesItemLineDetail", {})
    qty = _amount(detail.get("Qty"), "Qty")
    price = _amount(detail.get("UnitPrice"), "UnitPrice")
    if qty is not None and price is not None:
        # 6070: Amount must equal Qty * UnitPrice, compared at cent precision (notes §1.3).
        expected = (qty * price).quantize(CENT, ROUND_HALF_UP)
        if amount.quantize(CENT, ROUND_HALF_UP) != expected:
            raise faults.amount_mismatch(amount)
    ref, item = detail.get("ItemRef"), None
    if ref and ref.get("value"):
        if ref["value"] == SHIPPING_ITEM_ID:
            detail["ItemRef"] = {"value": SHIPPING_ITEM_ID}
        else:
            item = company.get("Item", str(ref["value"]))
            if item is None or not item.get("Active", True):
                raise faults.invalid_reference("ItemRef", ref["value"])
            detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
    return amount, tax.line_code(detail, item)


def _discount_line(company: Company, line: dict, subtotal: Decimal) -> Decimal:
    detail = line.setdefault("DiscountLineDetail", {})
    amount = _amount(line.get("Amount"), "Line.Amount")
    percent = _amount(detail.get("DiscountPercent"), "DiscountPercent")
    if amount is None and detail.get("PercentBased") and percent is not None:
        amount = (subtotal * percent / 100).quantize(CENT, ROUND_HALF_UP)
    if amount is None:
        raise faults.required("Line.Amount")
    line["Amount"] = amount
    if detail.get("DiscountAccountRef"):
        account_ref(company, detail, "DiscountAccountRef", required=True)
    return amount


def _payment(company: Company, obj: dict, old: dict | None) -> dict:
    """Payment: CustomerRef and TotalAmt required; applied lines ≤ open balances (notes §1.4)."""
    customer = _customer(company, obj, required=True)
    _currency(company, obj)
    total = _amount(obj.get("TotalAmt"), "TotalAmt")
    if total is None:
        raise faults.required("TotalAmt")
    if total < 0:
        raise faults.business("Payment amount cannot be negative.")
    obj["TotalAmt"] = total
    payment_id = old["Id"] if old else None
    applied = Decimal(0)
    for line in obj.get("Line") or []:
        amount = _amount(line.get("Amount"), "Line.Amount")
        if amount is None:
            raise faults.required("Line.Amount")
        line["Amount"] = amount
        for link in line.get("LinkedTxn") or []:
            kind, txn_id = link.get("TxnType"), str(link.get("TxnId", ""))
            if kind not in LINKABLE:
                raise faults.invalid_property(f"LinkedTxn.TxnType {kind}")
            target = company.get(kind, txn_id)
            if target is None:
                raise faults.invalid_reference("LinkedTxn.TxnId", txn_id)
            if target.get("CustomerRef", {}).get("value") != customer["Id"]:
                raise faults.business(f"{kind} {txn_id} belongs to another customer.")
            open_balance = target["TotalAmt"] - company.applied(kind, txn_id, except_payment=payment_id)
            if amount > open_balance:
                # Emulator wording; the notes only say over-application is rejected.
                raise faults.business(f"The amount applied to {kind} {target.get('DocNumber', txn_id)} "
                                      f"({amount}) is more than its open balance ({open_balance}).")
            link["TxnId"] = txn_id
            link.pop("TxnLineId", None)
            applied += LINKABLE[kind] * amount
    if applied > total:
        raise faults.business("The amount applied is more than the payment amount.")
    obj["UnappliedAmt"] = total - applied
    obj.setdefault("TxnDate", company.clock.today())
    obj.setdefault("DepositToAccountRef", {"value": UNDEPOSITED_FUNDS})
    account_ref(company, obj, "DepositToAccountRef", required=True, types=DEPOSIT_ACCOUNT_TYPES)
    _ref(company, obj, "PaymentMethodRef", "PaymentMethod")
    obj.setdefault("ProcessPayment", False)
    return obj


# -- effects -------------------------------------------------------------------------------

def _payment_links(payment: dict | None) -> dict[tuple[str, str], Decimal]:
    links: dict[tuple[str, str], Decimal] = {}
    for line in (payment or {}).get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            key = (link["TxnType"], str(link["TxnId"]))
            links[key] = links.get(key, Decimal(0)) + line["Amount"]
    return links


def after_write(company: Company, entity: str, new: dict | None, old: dict | None) -> None:
    """Propagate a stored write: payment links -> invoice balances -> customer balances."""
    if entity == "Invoice":
        for doc, sign in ((old, -1), (new, 1)):
            if doc and doc.get("CustomerRef"):
                _adjust_customer(company, doc["CustomerRef"]["value"], sign * doc["Balance"])
    if entity == "Payment":
        payment_id = (new or old)["Id"]
        before, after = _payment_links(old), _payment_links(new)
        for key in set(before) | set(after):
            bucket = company.links.setdefault(key, {})
            bucket.pop(payment_id, None)
            if key in after:
                bucket[payment_id] = after[key]
            if before.get(key) != after.get(key):
                _refresh_balance(company, key, payment_id, linked=key in after)


def _adjust_customer(company: Company, customer_id: str, delta: Decimal) -> None:
    # Kept incrementally: recomputing from every invoice is quadratic for a busy customer.
    customer = company.get("Customer", customer_id)
    if customer is not None and delta:
        customer["Balance"] = customer["BalanceWithJobs"] = customer["Balance"] + delta


def _refresh_balance(company: Company, key: tuple[str, str], payment_id: str, linked: bool) -> None:
    kind, txn_id = key
    doc = company.get(kind, txn_id)
    if doc is None:
        return
    remaining = doc["TotalAmt"] - company.applied(kind, txn_id)
    if kind == "Invoice" and doc.get("CustomerRef"):
        _adjust_customer(company, doc["CustomerRef"]["value"], remaining - doc["Balance"])
    doc["Balance"] = remaining
    if "HomeBalance" in doc:
        doc["HomeBalance"] = (remaining * doc["ExchangeRate"]).quantize(CENT, ROUND_HALF_UP)
    if kind == "CreditMemo":
        doc["RemainingCredit"] = remaining
    others = [link for link in doc.get("LinkedTxn") or []
              if not (link.get("TxnType") == "Payment" and link.get("TxnId") == payment_id)]
    if linked:
        others.append({"TxnId": payment_id, "TxnType": "Payment"})
    doc["LinkedTxn"] = others
    company.touch(kind, doc)


def customer_balance(company: Company, customer_id: str | None) -> Decimal:
    """Open A/R of a customer: Σ of its invoices' balances."""
    if customer_id is None:
        return Decimal(0)
    return sum((invoice["Balance"] for invoice in company.invoices_of(customer_id)), Decimal(0))


def before_delete(company: Company, entity: str, old: dict) -> None:
    """Linked transactions must be unlinked first (notes §1.3)."""
    if entity in LINKABLE and company.links.get((entity, old["Id"])):
        raise faults.business("This transaction is linked to a payment; unlink the payment first.")


def voided(company: Company, entity: str, old: dict) -> dict:
    """A voided copy: amounts and quantities zeroed, ``PrivateNote`` prefixed "Voided" (notes §1.3)."""
    if entity not in ("Invoice", "Payment", "SalesReceipt"):
        raise faults.unsupported(f"void for {entity}")
    before_delete(company, entity, old)
    obj = {k: v for k, v in old.items()}
    lines = []
    for line in old.get("Line") or []:
        line = dict(line)
        if "Amount" in line:
            line["Amount"] = Decimal(0)
        detail = line.get("SalesItemLineDetail")
        if detail:
            line["SalesItemLineDetail"] = {**detail, "Qty": 0}
            line["SalesItemLineDetail"].pop("UnitPrice", None)
        if entity == "Payment":
            line["LinkedTxn"] = []
        lines.append(line)
    obj["Line"] = lines
    obj["TotalAmt"] = Decimal(0)
    obj["Balance"] = Decimal(0)
    if entity == "Payment":
        obj["UnappliedAmt"] = Decimal(0)
    if "TxnTaxDetail" in obj:
        obj["TxnTaxDetail"] = {"TotalTax": Decimal(0)}
    note = old.get("PrivateNote")
    obj["PrivateNote"] = f"Voided - {note}" if note else "Voided"
    return obj
