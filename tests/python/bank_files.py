#!/usr/bin/env python3
"""Writes the bank's files for the payments tests (tests/payments.rs), as a
bank writes them, from a small JSON description.

    python tests/python/bank_files.py DESCRIPTION.json OUT.xml
    python tests/python/bank_files.py read OUT.xml

The structure follows the ISO 20022 message definitions:

- camt.054.001.02 (BankToCustomerDebitCreditNotificationV02) and
  camt.053.001.02 (BankToCustomerStatementV02): GrpHdr (MsgId, CreDtTm),
  then Ntfctn or Stmt (Id, CreDtTm, Acct), each entry an Ntry (NtryRef,
  Amt Ccy, CdtDbtInd, Sts BOOK, BookgDt, ValDt, AcctSvcrRef, BkTxCd,
  NtryDtls/TxDtls with Refs, AmtDtls, RltdPties, RmtInf, RtrInf);
- pain.002.001.03 (CustomerPaymentStatusReportV03): GrpHdr, then
  OrgnlGrpInfAndSts (OrgnlMsgId, OrgnlMsgNmId, GrpSts), then
  OrgnlPmtInfAndSts with one TxInfAndSts per transaction (StsId,
  OrgnlEndToEndId, TxSts, StsRsnInf/Rsn/Cd, OrgnlTxRef with InstdAmt,
  ReqdColltnDt, Dbtr, DbtrAcct).

Every IBAN of the description is checked with `schwifty` first: a bank
writes valid ones.

The description (JSON):

    {"message": "camt.054.001.02", "msg_id": "NTF-1",
     "created": "2026-11-20T08:00:00", "account": "FR76...",
     "entries": [{"reference": "BANK-1", "amount": "24.00", "credit": true,
                  "booking_date": "2026-11-19", "remittance": "EXM-2026-000003",
                  "debtor_name": "Jean Dupont", "debtor_iban": "FR76...",
                  "end_to_end_id": "...", "return_reason": "AM04",
                  "status": "BOOK"}]}

    {"message": "pain.002.001.03", "msg_id": "STS-1",
     "created": "2026-11-18T09:30:00", "original_msg_id": "...",
     "transactions": [{"end_to_end_id": "EXM-2026-000001", "amount": "24.00",
                       "status": "RJCT", "reason": "AM04",
                       "collection_date": "2026-11-16"}]}

`read FILE` prints what the independent reader, the PyPI package
`camt053`, reads in a camt file: one JSON object per transaction
(reference, credit or debit, amount, booking date, end-to-end id, reason).
"""

import json
import sys
import xml.etree.ElementTree as ET

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:"


def iban(text):
    from schwifty import IBAN

    return str(IBAN(text).compact)


def sub(parent, name, text=None, **attributes):
    element = ET.SubElement(parent, name, attributes)
    if text is not None:
        element.text = str(text)
    return element


def path(parent, names, text):
    for name in names[:-1]:
        parent = sub(parent, name)
    return sub(parent, names[-1], text)


def camt(description):
    message = description["message"]
    root = ET.Element("Document", xmlns=NAMESPACE + message)
    statement_kind = message.startswith("camt.053")
    body = sub(root, "BkToCstmrStmt" if statement_kind else "BkToCstmrDbtCdtNtfctn")
    header = sub(body, "GrpHdr")
    sub(header, "MsgId", description["msg_id"])
    sub(header, "CreDtTm", description["created"])
    holder = sub(body, "Stmt" if statement_kind else "Ntfctn")
    sub(holder, "Id", description["msg_id"] + "-1")
    if statement_kind:
        sub(holder, "ElctrncSeqNb", "1")
    sub(holder, "CreDtTm", description["created"])
    account = sub(holder, "Acct")
    path(account, ["Id", "IBAN"], iban(description["account"]))
    sub(account, "Ccy", "EUR")
    if statement_kind:
        total = sum(
            (1 if e.get("credit", True) else -1) * float(e["amount"])
            for e in description["entries"]
        )
        for code, amount in (("OPBD", 0.0), ("CLBD", total)):
            balance = sub(holder, "Bal")
            path(balance, ["Tp", "CdOrPrtry", "Cd"], code)
            sub(balance, "Amt", f"{abs(amount):.2f}", Ccy="EUR")
            sub(balance, "CdtDbtInd", "CRDT" if amount >= 0 else "DBIT")
            path(balance, ["Dt", "Dt"], description["created"][:10])
    for e in description["entries"]:
        credit = e.get("credit", True)
        entry = sub(holder, "Ntry")
        sub(entry, "NtryRef", e["reference"])
        sub(entry, "Amt", e["amount"], Ccy="EUR")
        sub(entry, "CdtDbtInd", "CRDT" if credit else "DBIT")
        sub(entry, "Sts", e.get("status", "BOOK"))
        path(entry, ["BookgDt", "Dt"], e["booking_date"])
        path(entry, ["ValDt", "Dt"], e.get("value_date", e["booking_date"]))
        sub(entry, "AcctSvcrRef", e["reference"])
        # Bank transaction code: received credit transfer, or a returned
        # direct debit (ISO domain PMNT, families RCDT / IDDT).
        code = sub(entry, "BkTxCd")
        domain = sub(code, "Domn")
        sub(domain, "Cd", "PMNT")
        family = sub(domain, "Fmly")
        if "return_reason" in e:
            sub(family, "Cd", "IDDT")
            sub(family, "SubFmlyCd", "UPDD")
        else:
            sub(family, "Cd", "RCDT" if credit else "ICDT")
            sub(family, "SubFmlyCd", "ESCT")
        details = sub(sub(entry, "NtryDtls"), "TxDtls")
        refs = sub(details, "Refs")
        sub(refs, "EndToEndId", e.get("end_to_end_id", "NOTPROVIDED"))
        amounts = sub(details, "AmtDtls")
        path(amounts, ["TxAmt", "Amt"], e["amount"]).set("Ccy", "EUR")
        if "debtor_name" in e or "debtor_iban" in e:
            parties = sub(details, "RltdPties")
            if "debtor_name" in e:
                sub(sub(parties, "Dbtr"), "Nm", e["debtor_name"])
            if "debtor_iban" in e:
                path(parties, ["DbtrAcct", "Id", "IBAN"], iban(e["debtor_iban"]))
        if "remittance" in e:
            sub(sub(details, "RmtInf"), "Ustrd", e["remittance"])
        if "return_reason" in e:
            returned = sub(details, "RtrInf")
            path(returned, ["Rsn", "Cd"], e["return_reason"])
    return root


def status_report(description):
    message = description["message"]
    root = ET.Element("Document", xmlns=NAMESPACE + message)
    body = sub(root, "CstmrPmtStsRpt")
    header = sub(body, "GrpHdr")
    sub(header, "MsgId", description["msg_id"])
    sub(header, "CreDtTm", description["created"])
    group = sub(body, "OrgnlGrpInfAndSts")
    sub(group, "OrgnlMsgId", description["original_msg_id"])
    sub(group, "OrgnlMsgNmId", "pain.008.001.02")
    sub(group, "GrpSts", description.get("group_status", "PART"))
    block = sub(body, "OrgnlPmtInfAndSts")
    sub(block, "OrgnlPmtInfId", description["original_msg_id"] + "-1")
    for i, t in enumerate(description["transactions"], start=1):
        tx = sub(block, "TxInfAndSts")
        sub(tx, "StsId", f"{description['msg_id']}-{i}")
        sub(tx, "OrgnlEndToEndId", t["end_to_end_id"])
        sub(tx, "TxSts", t.get("status", "RJCT"))
        if "reason" in t:
            path(sub(tx, "StsRsnInf"), ["Rsn", "Cd"], t["reason"])
        original = sub(tx, "OrgnlTxRef")
        path(original, ["Amt", "InstdAmt"], t["amount"]).set("Ccy", "EUR")
        if "collection_date" in t:
            sub(original, "ReqdColltnDt", t["collection_date"])
        if "debtor_name" in t:
            sub(sub(original, "Dbtr"), "Nm", t["debtor_name"])
        if "debtor_iban" in t:
            path(original, ["DbtrAcct", "Id", "IBAN"], iban(t["debtor_iban"]))
    return root


def write(description_path, out_path):
    with open(description_path, encoding="utf-8") as f:
        description = json.load(f)
    message = description["message"]
    if message.startswith("camt.05"):
        root = camt(description)
    elif message.startswith("pain.002"):
        root = status_report(description)
    else:
        raise SystemExit(f"unknown message {message}")
    ET.indent(root)
    ET.ElementTree(root).write(out_path, encoding="UTF-8", xml_declaration=True)


def read(file_path):
    from camt053.parse.statement_parser import parse_document

    with open(file_path, encoding="utf-8") as f:
        document = parse_document(f.read())
    out = []
    for statement in document.statements:
        for entry in statement.entries:
            details = entry.details[0] if entry.details else None
            out.append(
                {
                    "reference": entry.account_servicer_ref or entry.reference,
                    "credit": entry.credit_debit_indicator == "CRDT",
                    "amount": entry.amount,
                    "booking_date": entry.booking_date,
                    "status": entry.status,
                    "end_to_end_id": details.end_to_end_id if details else None,
                    "reason": entry.reason_code,
                }
            )
    print(json.dumps({"message": document.message_type, "entries": out}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "read":
        read(sys.argv[2])
    elif len(sys.argv) == 3:
        write(sys.argv[1], sys.argv[2])
    else:
        raise SystemExit(__doc__)
