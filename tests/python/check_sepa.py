#!/usr/bin/env python3
"""Checks a SEPA file made by mvnobill: the direct debits (pipeline/stages/
sepa.rs, pain.008) or the refunds (pipeline/stages/refunds.rs, pain.001).

    python tests/python/check_sepa.py FILE.xml

Validates the file against the official ISO 20022 schema of its namespace
(pain.008.001.02, …) as the PyPI package `sepaxml` ships it
(`sepaxml/schemas/`), with `xmlschema`; then prints what the file says as
one JSON object (group header, payment blocks, transactions) for the test
to compare with figures it computed itself. Every IBAN and BIC of the file
is checked by the PyPI package `schwifty`, independently of mvnobill's own
checks; the JSON says how many (`ibans_checked`).

Exits 0 when the file is valid; 1 with one line saying why otherwise.
"""

import json
import pathlib
import sys
import xml.etree.ElementTree as ElementTree


class Failed(Exception):
    pass


def one_line(text):
    return " ".join(str(text).split())


def check(path):
    try:
        import sepaxml
        import xmlschema
    except ImportError as err:
        raise Failed(f"missing Python package ({err}): pip install sepaxml xmlschema") from err
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as err:
        raise Failed(f"not well-formed XML: {one_line(err)}") from err
    if not root.tag.startswith("{"):
        raise Failed("the root element has no namespace")
    namespace = root.tag[1:].split("}")[0]
    name = namespace.rsplit(":", 1)[-1]
    xsd = pathlib.Path(sepaxml.__file__).parent / "schemas" / f"{name}.xsd"
    if not xsd.exists():
        raise Failed(f"no schema for {namespace} in sepaxml")
    schema = xmlschema.XMLSchema(str(xsd))
    for error in schema.iter_errors(path):
        raise Failed(f"fails the {name} XSD: {one_line(error.reason)} at {error.path}")

    ns = {"p": namespace}

    def text(element, child):
        found = element.find(child, ns)
        return None if found is None else found.text

    def bic(element, agent):
        # BIC in pain.008.001.02, BICFI in later versions.
        return (
            text(element, f"p:{agent}/p:FinInstnId/p:BIC")
            or text(element, f"p:{agent}/p:FinInstnId/p:BICFI")
            or text(element, f"p:{agent}/p:FinInstnId/p:Othr/p:Id")
        )

    try:
        import schwifty
    except ImportError as err:
        raise Failed(f"missing Python package ({err}): pip install schwifty") from err
    checked = 0
    for element in root.iter():
        tag = element.tag.split("}")[-1]
        try:
            if tag == "IBAN":
                schwifty.IBAN(element.text)
                checked += 1
            elif tag in ("BIC", "BICFI"):
                schwifty.BIC(element.text)
        except ValueError as err:
            raise Failed(f"{tag} {element.text!r} fails schwifty: {one_line(err)}") from err

    if root.find("p:CstmrCdtTrfInitn", ns) is not None:
        return transfers(root, ns, text, bic, name, checked)

    header = root.find("p:CstmrDrctDbtInitn/p:GrpHdr", ns)
    out = {
        "format": name,
        "message_id": text(header, "p:MsgId"),
        "created": text(header, "p:CreDtTm"),
        "transactions": text(header, "p:NbOfTxs"),
        "control_sum": text(header, "p:CtrlSum"),
        "initiating_party": text(header, "p:InitgPty/p:Nm"),
        "payments": [],
    }
    for block in root.findall("p:CstmrDrctDbtInitn/p:PmtInf", ns):
        payment = {
            "id": text(block, "p:PmtInfId"),
            "method": text(block, "p:PmtMtd"),
            "transactions": text(block, "p:NbOfTxs"),
            "control_sum": text(block, "p:CtrlSum"),
            "service_level": text(block, "p:PmtTpInf/p:SvcLvl/p:Cd"),
            "local_instrument": text(block, "p:PmtTpInf/p:LclInstrm/p:Cd"),
            "sequence_type": text(block, "p:PmtTpInf/p:SeqTp"),
            "collection_date": text(block, "p:ReqdColltnDt"),
            "creditor": text(block, "p:Cdtr/p:Nm"),
            "creditor_iban": text(block, "p:CdtrAcct/p:Id/p:IBAN"),
            "creditor_bic": bic(block, "CdtrAgt"),
            "charge_bearer": text(block, "p:ChrgBr"),
            "creditor_id": text(block, "p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id"),
            "creditor_id_scheme": text(
                block, "p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:SchmeNm/p:Prtry"
            ),
            "debits": [],
        }
        for debit in block.findall("p:DrctDbtTxInf", ns):
            amount = debit.find("p:InstdAmt", ns)
            payment["debits"].append(
                {
                    "end_to_end_id": text(debit, "p:PmtId/p:EndToEndId"),
                    "amount": amount.text,
                    "currency": amount.get("Ccy"),
                    "mandate_id": text(debit, "p:DrctDbtTx/p:MndtRltdInf/p:MndtId"),
                    "mandate_date": text(debit, "p:DrctDbtTx/p:MndtRltdInf/p:DtOfSgntr"),
                    "debtor_bic": bic(debit, "DbtrAgt"),
                    "debtor": text(debit, "p:Dbtr/p:Nm"),
                    "debtor_iban": text(debit, "p:DbtrAcct/p:Id/p:IBAN"),
                    "remittance": text(debit, "p:RmtInf/p:Ustrd"),
                }
            )
            amendment = {
                "amendment": text(debit, "p:DrctDbtTx/p:MndtRltdInf/p:AmdmntInd"),
                "original_iban": text(
                    debit,
                    "p:DrctDbtTx/p:MndtRltdInf/p:AmdmntInfDtls/p:OrgnlDbtrAcct/p:Id/p:IBAN",
                ),
                "original_agent": text(
                    debit,
                    "p:DrctDbtTx/p:MndtRltdInf/p:AmdmntInfDtls/p:OrgnlDbtrAgt/p:FinInstnId/p:Othr/p:Id",
                ),
            }
            # Only a debit that carries an amendment says so.
            payment["debits"][-1].update({k: v for k, v in amendment.items() if v is not None})
        out["payments"].append(payment)
    out["ibans_checked"] = checked
    return out


def transfers(root, ns, text, bic, name, checked):
    """What a credit-transfer file (pain.001) says."""
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", ns)
    out = {
        "format": name,
        "message_id": text(header, "p:MsgId"),
        "created": text(header, "p:CreDtTm"),
        "transactions": text(header, "p:NbOfTxs"),
        "control_sum": text(header, "p:CtrlSum"),
        "initiating_party": text(header, "p:InitgPty/p:Nm"),
        "payments": [],
        "ibans_checked": checked,
    }
    for block in root.findall("p:CstmrCdtTrfInitn/p:PmtInf", ns):
        payment = {
            "id": text(block, "p:PmtInfId"),
            "method": text(block, "p:PmtMtd"),
            "transactions": text(block, "p:NbOfTxs"),
            "control_sum": text(block, "p:CtrlSum"),
            "execution_date": text(block, "p:ReqdExctnDt"),
            "debtor": text(block, "p:Dbtr/p:Nm"),
            "debtor_iban": text(block, "p:DbtrAcct/p:Id/p:IBAN"),
            "debtor_bic": bic(block, "DbtrAgt"),
            "transfers": [],
        }
        for transfer in block.findall("p:CdtTrfTxInf", ns):
            amount = transfer.find("p:Amt/p:InstdAmt", ns)
            payment["transfers"].append(
                {
                    "end_to_end_id": text(transfer, "p:PmtId/p:EndToEndId"),
                    "amount": amount.text,
                    "currency": amount.get("Ccy"),
                    "creditor": text(transfer, "p:Cdtr/p:Nm"),
                    "creditor_iban": text(transfer, "p:CdtrAcct/p:Id/p:IBAN"),
                    "remittance": text(transfer, "p:RmtInf/p:Ustrd"),
                }
            )
        out["payments"].append(payment)
    return out


def main():
    if len(sys.argv) != 2:
        print("usage: check_sepa.py FILE.xml")
        return 2
    path = sys.argv[1]
    try:
        print(json.dumps(check(path)))
    except Failed as err:
        print(f"{path}: FAILED, {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
