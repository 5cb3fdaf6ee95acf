//! The refunds file of a month (account.md §7): each credit above
//! `[billing] refund_threshold` paid back by SEPA credit transfer, ISO 20022
//! `pain.001.001.03` (CustomerCreditTransferInitiationV03), written to
//! `<lake>/documents/YYYY-MM/refunds-YYYY-MM.xml` beside the direct-debit
//! file, for the integrator to send to its bank. `sepa` works out the
//! refunds and records them (`sepa_payments`, and a REFUND entry on the
//! customer's account); this module writes the file.
//!
//! - One payment block: the integrator's account as debtor, the requested
//!   execution date of the month's collections.
//! - One transaction per customer: its EndToEndId
//!   `<prefix>-RMB-<YYYYMM>-<customer_id>`, the amount (exact, 2 decimals),
//!   the customer's name, IBAN and BIC as customers.csv held them when the
//!   file was first written, "Remboursement de votre avoir" as remittance.
//! - The text folded to the SEPA Latin set as in the direct-debit file.

use std::io::Write as _;

use chrono::NaiveDate;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use rust_decimal::Decimal;

use crate::core::identifiers::sepa_text;
use crate::core::month::Month;

/// One credit paid back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub end_to_end_id: String,
    pub customer_id: String,
    /// Positive, 2 decimals.
    pub amount: Decimal,
    pub execution_date: NaiveDate,
    pub creditor_name: String,
    pub iban: String,
    pub bic: Option<String>,
}

/// Everything one refunds file says.
#[derive(Debug, Clone)]
pub struct TransferFile {
    pub message_id: String,
    pub created: NaiveDate,
    pub debtor_name: String,
    pub debtor_iban: String,
    pub debtor_bic: Option<String>,
    /// In EndToEndId order.
    pub refunds: Vec<Refund>,
}

/// The message id of a month's refunds file.
pub fn message_id(prefix: &str, month: Month) -> String {
    format!("{prefix}-RMB-{}", month.to_string().replace('-', ""))
}

/// The key of a month's refunds file in the lake (interface.md).
pub fn file_key(month: Month) -> String {
    format!("documents/{month}/refunds-{month}.xml")
}

const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03";

struct Xml(quick_xml::Writer<Vec<u8>>);

impl Xml {
    fn start(&mut self, name: &str) -> std::io::Result<()> {
        self.0.write_event(Event::Start(BytesStart::new(name)))
    }
    fn end(&mut self, name: &str) -> std::io::Result<()> {
        self.0.write_event(Event::End(BytesEnd::new(name)))
    }
    fn leaf_with(&mut self, start: BytesStart<'_>, text: &str) -> std::io::Result<()> {
        let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
        self.0.write_event(Event::Start(start))?;
        self.0.write_event(Event::Text(BytesText::new(text)))?;
        self.end(&name)
    }
    fn leaf(&mut self, name: &str, text: &str) -> std::io::Result<()> {
        self.leaf_with(BytesStart::new(name), text)
    }
    fn path(&mut self, names: &[&str], text: &str) -> std::io::Result<()> {
        let (last, parents) = names.split_last().expect("a path");
        for name in parents {
            self.start(name)?;
        }
        self.leaf(last, text)?;
        for name in parents.iter().rev() {
            self.end(name)?;
        }
        Ok(())
    }
    fn agent(&mut self, element: &str, bic: Option<&str>) -> std::io::Result<()> {
        self.start(element)?;
        match bic {
            Some(bic) => self.path(&["FinInstnId", "BIC"], bic)?,
            None => self.path(&["FinInstnId", "Othr", "Id"], "NOTPROVIDED")?,
        }
        self.end(element)
    }
}

/// The file's bytes: UTF-8 XML, indented by 2 spaces, ending with a newline.
pub fn write_xml(file: &TransferFile) -> std::io::Result<Vec<u8>> {
    let mut x = Xml(quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2));
    x.0.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    x.0.write_event(Event::Start(
        BytesStart::new("Document").with_attributes([("xmlns", NAMESPACE)]),
    ))?;
    x.start("CstmrCdtTrfInitn")?;
    let total: Decimal = file.refunds.iter().map(|r| r.amount).sum();
    let debtor = sepa_text(&file.debtor_name, 70);
    x.start("GrpHdr")?;
    x.leaf("MsgId", &file.message_id)?;
    x.leaf("CreDtTm", &format!("{}T00:00:00", file.created))?;
    x.leaf("NbOfTxs", &file.refunds.len().to_string())?;
    x.leaf("CtrlSum", &format!("{total:.2}"))?;
    x.path(&["InitgPty", "Nm"], &debtor)?;
    x.end("GrpHdr")?;

    let mut dates: Vec<NaiveDate> = file.refunds.iter().map(|r| r.execution_date).collect();
    dates.sort();
    dates.dedup();
    for date in dates {
        let refunds: Vec<&Refund> = file
            .refunds
            .iter()
            .filter(|r| r.execution_date == date)
            .collect();
        x.start("PmtInf")?;
        x.leaf(
            "PmtInfId",
            &format!("{}-{}", file.message_id, date.format("%Y%m%d")),
        )?;
        x.leaf("PmtMtd", "TRF")?;
        x.leaf("NbOfTxs", &refunds.len().to_string())?;
        x.leaf(
            "CtrlSum",
            &format!("{:.2}", refunds.iter().map(|r| r.amount).sum::<Decimal>()),
        )?;
        x.start("PmtTpInf")?;
        x.path(&["SvcLvl", "Cd"], "SEPA")?;
        x.end("PmtTpInf")?;
        x.leaf("ReqdExctnDt", &date.to_string())?;
        x.path(&["Dbtr", "Nm"], &debtor)?;
        x.path(&["DbtrAcct", "Id", "IBAN"], &file.debtor_iban)?;
        x.agent("DbtrAgt", file.debtor_bic.as_deref())?;
        x.leaf("ChrgBr", "SLEV")?;
        for refund in refunds {
            x.start("CdtTrfTxInf")?;
            x.path(&["PmtId", "EndToEndId"], &refund.end_to_end_id)?;
            x.start("Amt")?;
            x.leaf_with(
                BytesStart::new("InstdAmt").with_attributes([("Ccy", "EUR")]),
                &format!("{:.2}", refund.amount),
            )?;
            x.end("Amt")?;
            if let Some(bic) = &refund.bic {
                x.agent("CdtrAgt", Some(bic))?;
            }
            let name = match sepa_text(&refund.creditor_name, 70) {
                name if name.is_empty() => refund.customer_id.clone(),
                name => name,
            };
            x.path(&["Cdtr", "Nm"], &name)?;
            x.path(&["CdtrAcct", "Id", "IBAN"], &refund.iban)?;
            x.path(
                &["RmtInf", "Ustrd"],
                &sepa_text(
                    &format!("Remboursement de votre avoir client {}", refund.customer_id),
                    140,
                ),
            )?;
            x.end("CdtTrfTxInf")?;
        }
        x.end("PmtInf")?;
    }
    x.end("CstmrCdtTrfInitn")?;
    x.end("Document")?;
    let mut bytes = x.0.into_inner();
    bytes.write_all(b"\n")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_per_execution_date_with_exact_sums() {
        let refund = |id: &str, amount: &str| Refund {
            end_to_end_id: id.to_string(),
            customer_id: "C1".to_string(),
            amount: amount.parse().unwrap(),
            execution_date: "2026-12-16".parse().unwrap(),
            creditor_name: "Élodie Müller".to_string(),
            iban: "FR7630006000011234567890189".to_string(),
            bic: None,
        };
        let file = TransferFile {
            message_id: "EXM-RMB-202611".to_string(),
            created: "2026-12-01".parse().unwrap(),
            debtor_name: "Telco Exemple SAS".to_string(),
            debtor_iban: "FR7630006000011234567890189".to_string(),
            debtor_bic: Some("AGRIFRPPXXX".to_string()),
            refunds: vec![
                refund("EXM-RMB-202611-C1", "12.30"),
                refund("EXM-RMB-202611-C2", "0.10"),
            ],
        };
        let xml = String::from_utf8(write_xml(&file).unwrap()).unwrap();
        assert_eq!(xml.matches("<PmtInf>").count(), 1);
        assert!(xml.contains("<CtrlSum>12.40</CtrlSum>"));
        assert!(xml.contains("<InstdAmt Ccy=\"EUR\">0.10</InstdAmt>"));
        assert!(xml.contains("<Nm>Elodie Muller</Nm>"));
        assert!(xml.contains("<ReqdExctnDt>2026-12-16</ReqdExctnDt>"));
    }
}
