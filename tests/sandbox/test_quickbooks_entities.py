"""QuickBooks emulator: list entities (TaxCode, TaxRate, Account, PaymentMethod), sales tax, inactive
customers, and the paid-at-checkout / refund documents (SalesReceipt, RefundReceipt, CreditMemo),
driven through python-quickbooks 0.9.12 over loopback (notes §1.1, §1.3-§1.5, §2.3)."""

from __future__ import annotations

import json

import pytest
from quickbooks.exceptions import QuickbooksException, UnsupportedException
from quickbooks.objects.account import Account
from quickbooks.objects.base import Ref
from quickbooks.objects.creditmemo import CreditMemo
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.payment import Payment, PaymentLine
from quickbooks.objects.paymentmethod import PaymentMethod
from quickbooks.objects.refundreceipt import RefundReceipt
from quickbooks.objects.salesreceipt import SalesReceipt
from quickbooks.objects.taxcode import TaxCode
from quickbooks.objects.taxrate import TaxRate
from test_quickbooks_emulator import REALM, client, connect, fixture, new_customer, raw


@pytest.fixture
def qbo(sandbox):
    return connect(sandbox)


def ref(value: str) -> Ref:
    out = Ref()
    out.value = value
    return out


def line(amount: float, item: str = "1", qty=None, price=None, tax_code: str | None = None) -> SalesItemLine:
    out = SalesItemLine()
    out.Amount = amount
    out.SalesItemLineDetail = SalesItemLineDetail()
    out.SalesItemLineDetail.ItemRef = ref(item)
    out.SalesItemLineDetail.Qty = qty
    out.SalesItemLineDetail.UnitPrice = price
    if tax_code:
        out.SalesItemLineDetail.TaxCodeRef = ref(tax_code)
    return out


def first_error(response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["Fault"]["Error"][0]


# -- list entities ---------------------------------------------------------------------------

def test_tax_codes_and_rates_are_seeded_readable_and_queryable(qbo):
    qb = client(qbo)
    codes = {code.Id: code for code in TaxCode.all(qb=qb)}
    assert set(codes) == {"TAX", "NON", "2", "3"}
    assert (codes["TAX"].Taxable, codes["NON"].Taxable, codes["2"].Name) == (True, False, "California")
    assert TaxCode.get("TAX", qb=qb).Name == "TAX"
    assert [d.TaxRateRef.value for d in codes["3"].SalesTaxRateList.TaxRateDetail] == ["1", "2"]
    rates = TaxRate.all(qb=qb)
    assert [(r.Id, r.Name) for r in rates] == [("1", "AZ State tax"), ("2", "Tucson City"), ("3", "California")]
    assert TaxRate.get("3", qb=qb).RateValue == 8
    assert [c.Id for c in TaxCode.filter(Name="California", qb=qb)] == ["2"]
    assert TaxCode.count("TaxGroup = true", qb=qb) == 2


def test_tax_codes_and_rates_are_read_only_and_not_in_cdc(qbo):
    for entity in ("taxcode", "taxrate"):
        response = raw(qbo, "POST", entity, json={"Name": "Mine"})
        assert first_error(response)["code"] == "500"
    qb = client(qbo)
    with pytest.raises(UnsupportedException):
        qb.create_object("TaxRate", json.dumps({"Name": "Mine", "RateValue": 1}))
    cdc = raw(qbo, "GET", "cdc", params={"entities": "TaxCode", "changedSince": "2026-01-01"})
    assert cdc.status_code == 400


def test_accounts_and_payment_methods_are_readable_and_queryable(qbo):
    qb = client(qbo)
    checking = Account.filter(Name="Checking", qb=qb)
    assert [(a.Id, a.AccountType) for a in checking] == [("5", "Bank")]
    assert Account.get("3", qb=qb).Name == "Undeposited Funds"
    assert Account.count("AccountType = 'Income'", qb=qb) == 4
    methods = PaymentMethod.all(qb=qb)
    assert [(m.Name, m.Type) for m in methods] == [("Cash", "NON_CREDIT_CARD"), ("Check", "NON_CREDIT_CARD"),
                                                   ("Credit Card", "CREDIT_CARD")]
    assert PaymentMethod.get("2", qb=qb).Name == "Check"
    assert [m.Id for m in PaymentMethod.choose(["Cash", "Credit Card"], field="Name", qb=qb)] == ["1", "3"]


# -- sales tax ---------------------------------------------------------------------------------

def test_tax_is_computed_from_the_txn_tax_code_as_in_the_published_invoice(qbo):
    """The invoice read sample: 335.25 taxable at California 8 % -> 26.82, total 362.07."""
    qb = client(qbo)
    customer = new_customer(qb, "Sonnenschein Family Store")
    invoice = Invoice()
    invoice.CustomerRef = ref(customer.Id)
    invoice.Line = [line(275.0, qty=1, price=275, tax_code="TAX"), line(12.75, qty=1, price=12.75, tax_code="TAX"),
                    line(47.5, qty=5, price=9.5, tax_code="TAX"), line(10.0, tax_code="NON")]
    invoice.TxnTaxDetail = None
    body = json.loads(invoice.to_json())
    body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": "2"}}
    saved = qb.create_object("Invoice", json.dumps(body))["Invoice"]
    published = fixture("intuit-docs/invoice.read.response.json")["Invoice"]["TxnTaxDetail"]
    assert saved["TxnTaxDetail"] == {**published, "TxnTaxCodeRef": {"value": "2"}}
    assert (saved["TotalAmt"], saved["Balance"]) == (372.07, 372.07)
    default = raw(qbo, "POST", "invoice", json={"CustomerRef": {"value": customer.Id}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 5.0, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    assert default.json()["Invoice"]["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}


def test_unknown_line_tax_code_is_6100_and_unknown_txn_tax_code_2500(qbo):
    qb = client(qbo)
    customer = new_customer(qb, "Tax Tina")
    invoice = Invoice()
    invoice.CustomerRef = ref(customer.Id)
    invoice.Line = [line(5.0, tax_code="8")]
    with pytest.raises(QuickbooksException) as caught:
        invoice.save(qb=qb)
    assert caught.value.error_code == 6100
    body = {"CustomerRef": {"value": customer.Id}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 5.0,
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "2"}}}]}
    assert first_error(raw(qbo, "POST", "invoice", json=body)) == {
        "Message": "Invalid Line TaxCode in the request",
        "Detail": "Valid Line TaxCodes for US should be TAX or NON. Supplied value:2",
        "code": "6100", "element": "Line.SalesItemLineDetail.TaxCodeRef"}
    body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "TAX"}
    body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": "99"}}
    assert first_error(raw(qbo, "POST", "invoice", json=body))["code"] == "2500"
    assert qbo.control("GET", "state")["companies"][REALM]["Invoice"] == []


# -- inactive customers (notes §1.1) -------------------------------------------------------------

def test_inactive_customer_keeps_its_name_and_is_only_listed_when_asked(qbo):
    qb = client(qbo)
    customer = new_customer(qb, "Sleepy O'Hara")
    qb.update_object("Customer", json.dumps({"Id": customer.Id, "SyncToken": "0", "sparse": True, "Active": False}))
    assert Customer.filter(DisplayName="Sleepy O'Hara", qb=qb) == []
    assert Customer.count(qb=qb) == 0
    both = Customer.where("DisplayName = 'Sleepy O\\'Hara' AND Active IN (true, false)", qb=qb)
    assert [(c.Id, c.Active) for c in both] == [(customer.Id, False)]
    assert [c.Id for c in Customer.where("Active = false", qb=qb)] == [customer.Id]
    with pytest.raises(QuickbooksException) as caught:
        new_customer(qb, "sleepy o'hara")
    assert caught.value.error_code == 6240
    invoice = raw(qbo, "POST", "invoice", json={"CustomerRef": {"value": customer.Id}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 5.0, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    assert first_error(invoice)["code"] == "2500"
    qb.update_object("Customer", json.dumps({"Id": customer.Id, "SyncToken": "1", "sparse": True, "Active": True}))
    assert [c.DisplayName for c in Customer.filter(DisplayName="Sleepy O'Hara", qb=qb)] == ["Sleepy O'Hara"]


# -- SalesReceipt, RefundReceipt, CreditMemo (notes §1.5) -----------------------------------------

def test_sales_receipt_create_read_void_delete(qbo):
    qb = client(qbo)
    receipt = SalesReceipt()
    receipt.CustomerRef = ref(new_customer(qb, "Checkout Chris").Id)
    receipt.PaymentMethodRef = ref("3")
    receipt.PaymentRefNum = "ch_123"
    receipt.Line = [line(40.0, qty=2, price=20.0)]
    saved = receipt.save(qb=qb, request_id="receipt-1")
    assert (saved.TotalAmt, saved.Balance, saved.DepositToAccountRef.value) == (40.0, 0, "3")  # Undeposited Funds
    assert saved.PaymentMethodRef.name == "Credit Card"
    again = SalesReceipt.get(saved.Id, qb=qb)
    assert again.SyncToken == "0" and again.Line[-1].DetailType == "SubTotalLineDetail"
    again.void(qb=qb)  # operation=update&include=void
    voided = SalesReceipt.get(saved.Id, qb=qb)
    assert (voided.TotalAmt, voided.PrivateNote, voided.SyncToken) == (0, "Voided", "1")
    voided.delete(qb=qb)
    assert SalesReceipt.count(qb=qb) == 0


def test_refund_receipt_needs_an_asset_deposit_account_and_cannot_be_voided(qbo):
    qb = client(qbo)
    refund = RefundReceipt()
    refund.CustomerRef = ref(new_customer(qb, "Refund Rhea").Id)
    refund.Line = [line(12.5)]
    refund.DepositToAccountRef = None
    with pytest.raises(QuickbooksException) as missing:
        refund.save(qb=qb)
    assert missing.value.error_code == 2020
    refund.DepositToAccountRef = ref("1")  # an Income account
    with pytest.raises(QuickbooksException) as wrong_type:
        refund.save(qb=qb)
    assert wrong_type.value.error_code == 6000
    refund.DepositToAccountRef = ref("5")  # Checking (Bank), as the published sample
    saved = refund.save(qb=qb)
    assert (saved.TotalAmt, saved.DepositToAccountRef.name) == (12.5, "Checking")
    assert RefundReceipt.get(saved.Id, qb=qb).TotalAmt == 12.5
    void = raw(qbo, "POST", "refundreceipt?operation=void", json={"Id": saved.Id, "SyncToken": "0"})
    assert first_error(void)["code"] == "500"
    RefundReceipt.get(saved.Id, qb=qb).delete(qb=qb)
    assert RefundReceipt.count(qb=qb) == 0


def test_credit_memo_create_read_delete_no_void_and_customer_required(qbo):
    qb = client(qbo)
    memo = CreditMemo()
    memo.Line = [line(10.0)]
    with pytest.raises(QuickbooksException) as missing:
        memo.save(qb=qb)
    assert missing.value.error_code == 2020
    memo.CustomerRef = ref(new_customer(qb, "Memo Max").Id)
    saved = memo.save(qb=qb)
    assert (saved.TotalAmt, saved.RemainingCredit) == (10.0, 10.0)
    with pytest.raises(UnsupportedException):
        qb.misc_operation("creditmemo?operation=void", json.dumps({"Id": saved.Id, "SyncToken": "0"}))
    CreditMemo.get(saved.Id, qb=qb).delete(qb=qb)
    assert CreditMemo.count(qb=qb) == 0


def test_sdk_full_updates_of_name_lists_and_payment_delete(qbo):
    qb = client(qbo)
    account = Account()
    account.Name = "Shopify Clearing"
    account.AccountType = "Bank"
    account = account.save(qb=qb)
    account.Description = "payouts"
    saved = account.save(qb=qb)  # full update through the SDK (its blank defaults included)
    assert (saved.SyncToken, saved.Description, saved.AccountType) == ("1", "payouts", "Bank")
    method = PaymentMethod()
    method.Name = "Shopify Payments"
    method = method.save(qb=qb)
    assert PaymentMethod.filter(Name="Shopify Payments", qb=qb)[0].Id == method.Id
    invoice = Invoice()
    invoice.CustomerRef = ref(new_customer(qb, "Payer Pat").Id)
    invoice.Line = [line(30.0)]
    invoice = invoice.save(qb=qb)
    payment = Payment()
    payment.TotalAmt = 30.0
    payment.CustomerRef = invoice.CustomerRef
    payment.DepositToAccountRef = ref(account.Id)
    payment.PaymentMethodRef = ref(method.Id)
    payment_line = PaymentLine()
    payment_line.Amount = 30.0
    payment_line.LinkedTxn.append(invoice.to_linked_txn())
    payment.Line.append(payment_line)
    payment = payment.save(qb=qb)
    assert (payment.DepositToAccountRef.name, payment.PaymentMethodRef.name) == ("Shopify Clearing",
                                                                                  "Shopify Payments")
    assert Invoice.get(invoice.Id, qb=qb).Balance == 0
    payment.delete(qb=qb)
    assert Invoice.get(invoice.Id, qb=qb).Balance == 30.0
    assert Payment.count(qb=qb) == 0
