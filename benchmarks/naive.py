"""The comparison, not product code: how a workflow tool (Zapier/Make style) books orders.

One order at a time, no batching, no pacing (a 429 is retried after its Retry-After), find-then-create:
HubSpot: search the contact by email -> update or create it -> create the deal -> associate deal and
contact. QuickBooks: query the customer by email (then by name) -> create it if missing -> query each
SKU's item -> create a sales receipt (paid orders, ``sales_receipt`` posting) or an invoice plus a payment.
Refunds, voids and line items in HubSpot are left out, so its call count is a lower bound.
Orders come from the generator (the same specs the sandbox was seeded with), as a trigger's payload would.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

REALM = "9341453050500001"


class Naive:
    def __init__(self, credentials: dict, posting: str = "sales_receipt"):
        self.hs = credentials["hubspot"]["host"]
        self.qbo = credentials["quickbooks"]["api_url"] + f"/company/{REALM}"
        self.posting = posting
        self.client = httpx.Client(timeout=60, trust_env=False)
        self.calls = {"hubspot": 0, "quickbooks": 0}
        self.throttled = {"hubspot": 0, "quickbooks": 0}
        self.errors = 0
        qb = credentials["quickbooks"]
        base = qb["api_url"].rsplit("/v3", 1)[0]
        r = self.client.post(f"{base}/oauth2/v1/tokens/bearer", auth=(qb["client_id"], qb["client_secret"]),
                             data={"grant_type": "refresh_token", "refresh_token": qb["refresh_token"]})
        r.raise_for_status()
        self.qbo_headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Accept": "application/json"}
        self.hs_headers = {"Authorization": f"Bearer {credentials['hubspot']['access_token']}"}
        self.items: dict[str, str] = {}

    def _send(self, system: str, method: str, url: str, **kw) -> httpx.Response:
        headers = self.hs_headers if system == "hubspot" else self.qbo_headers
        while True:
            self.calls[system] += 1
            r = self.client.request(method, url, headers=headers, **kw)
            if r.status_code == 429:
                self.throttled[system] += 1
                time.sleep(float(r.headers.get("Retry-After") or 1.0))
                continue
            if r.status_code >= 400:
                self.errors += 1
            return r

    def book(self, spec: dict, n: int) -> None:
        cust = spec.get("customer") or {}
        email = cust.get("email")
        name = f"{cust.get('first_name', '')} {cust.get('last_name', '')}".strip() or f"Guest {n}"
        # HubSpot
        contact_id = None
        if email:
            r = self._send("hubspot", "POST", f"{self.hs}/crm/v3/objects/contacts/search", json={
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}]})
            found = r.json().get("results") if r.status_code == 200 else None
            props = {"email": email, "firstname": cust.get("first_name") or "", "lastname": cust.get("last_name") or ""}
            if found:
                contact_id = found[0]["id"]
                self._send("hubspot", "PATCH", f"{self.hs}/crm/v3/objects/contacts/{contact_id}",
                           json={"properties": props})
            else:
                r = self._send("hubspot", "POST", f"{self.hs}/crm/v3/objects/contacts", json={"properties": props})
                if r.status_code < 300:
                    contact_id = r.json()["id"]
        total = sum(Decimal(line["unit_price"]) * line["quantity"] for line in spec["lines"])
        r = self._send("hubspot", "POST", f"{self.hs}/crm/v3/objects/deals", json={"properties": {
            "dealname": f"{spec.get('name', n)} (naive)", "amount": str(total), "pipeline": "default",
            "dealstage": "closedwon"}})
        if contact_id and r.status_code < 300:
            self._send("hubspot", "PUT", f"{self.hs}/crm/v4/objects/deals/{r.json()['id']}/associations/default/"
                                         f"contacts/{contact_id}")
        # QuickBooks
        customer_id = None
        for where in ([f"PrimaryEmailAddr = '{email}'"] if email else []) + [
                "DisplayName = '{}'".format(f"{name} N{n}".replace("'", "\\'"))]:
            r = self._send("quickbooks", "POST", f"{self.qbo}/query", content=f"SELECT * FROM Customer WHERE {where}")
            got = (r.json().get("QueryResponse") or {}).get("Customer") if r.status_code == 200 else None
            if got:
                customer_id = got[0]["Id"]
                break
        if customer_id is None:
            body = {"DisplayName": f"{name} N{n}"}
            if email:
                body["PrimaryEmailAddr"] = {"Address": email}
            r = self._send("quickbooks", "POST", f"{self.qbo}/customer", json=body)
            customer_id = r.json()["Customer"]["Id"] if r.status_code < 300 else "1"
        lines = []
        for line in spec["lines"]:
            r = self._send("quickbooks", "POST", f"{self.qbo}/query",
                           content=f"SELECT * FROM Item WHERE Sku = '{line['sku']}'")
            got = (r.json().get("QueryResponse") or {}).get("Item") if r.status_code == 200 else None
            item_id = got[0]["Id"] if got else "1"
            price = Decimal(line["unit_price"])
            lines.append({"DetailType": "SalesItemLineDetail", "Amount": str(price * line["quantity"]),
                          "SalesItemLineDetail": {"ItemRef": {"value": item_id}, "Qty": line["quantity"],
                                                  "UnitPrice": str(price)}})
        doc = {"CustomerRef": {"value": customer_id}, "Line": lines}
        paid = spec.get("financial_status") == "paid"
        if self.posting == "sales_receipt" and paid:
            self._send("quickbooks", "POST", f"{self.qbo}/salesreceipt", json=doc)
        else:
            r = self._send("quickbooks", "POST", f"{self.qbo}/invoice", json=doc)
            if paid and r.status_code < 300:
                inv = r.json()["Invoice"]
                self._send("quickbooks", "POST", f"{self.qbo}/payment", json={
                    "CustomerRef": {"value": customer_id}, "TotalAmt": inv["TotalAmt"],
                    "Line": [{"Amount": inv["TotalAmt"], "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})
