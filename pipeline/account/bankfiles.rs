//! The bank's ISO 20022 files that `payments import` reads (account.md §7):
//! what each transaction of a file says, nothing decided yet.
//!
//! - `camt.054` (BankToCustomerDebitCreditNotification), `camt.053`
//!   (BankToCustomerStatement) and `camt.052` (BankToCustomerAccountReport),
//!   versions `.001.02`, `.001.04` and `.001.08`: one transaction per
//!   `Ntry`, or per `NtryDtls/TxDtls` when an entry books several. Only
//!   booked entries (`Sts` `BOOK`) are read; a pending or informative one
//!   is counted as skipped (the bank books it in a later file).
//! - `pain.002` (CustomerPaymentStatusReport), `.001.03` and `.001.10`: one
//!   transaction per `TxInfAndSts` rejected (`TxSts` `RJCT`, or no status
//!   of its own under a payment block or a group rejected); the other
//!   statuses (accepted, pending) are skipped.
//!
//! The message is told by the root's namespace
//! (`urn:iso:std:iso:20022:tech:xsd:camt.054.001.02`, …) and checked
//! against the element under `Document`. Elements of another namespace
//! (a bank's supplementary data) are left aside. Amounts are exact decimals
//! in euros (`Ccy="EUR"`, at most 2 decimals), never floats.
//!
//! A file that is not one of these, or lacks what a transaction needs (a
//! reference to take it once, an amount, a date, a reason for a return),
//! is refused whole, in one line naming the file, the line and the
//! element: nothing of it is recorded.
//!
//! The debtor's IBAN is read to match a transfer to a customer; it never
//! goes into a message, a report or the ledger (`Debug` masks it).

use chrono::NaiveDate;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use rust_decimal::Decimal;

/// The namespace every ISO 20022 message's `Document` is in, before the
/// message identifier.
const ISO_NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:";

/// The messages read: identifier, the element under `Document`, the
/// element that holds the entries (camt) and the family.
const MESSAGES: &[(&str, &str, &str, Family)] = &[
    (
        "camt.054.001.02",
        "BkToCstmrDbtCdtNtfctn",
        "Ntfctn",
        Family::Camt,
    ),
    (
        "camt.054.001.04",
        "BkToCstmrDbtCdtNtfctn",
        "Ntfctn",
        Family::Camt,
    ),
    (
        "camt.054.001.08",
        "BkToCstmrDbtCdtNtfctn",
        "Ntfctn",
        Family::Camt,
    ),
    ("camt.053.001.02", "BkToCstmrStmt", "Stmt", Family::Camt),
    ("camt.053.001.04", "BkToCstmrStmt", "Stmt", Family::Camt),
    ("camt.053.001.08", "BkToCstmrStmt", "Stmt", Family::Camt),
    ("camt.052.001.02", "BkToCstmrAcctRpt", "Rpt", Family::Camt),
    ("camt.052.001.04", "BkToCstmrAcctRpt", "Rpt", Family::Camt),
    ("camt.052.001.08", "BkToCstmrAcctRpt", "Rpt", Family::Camt),
    (
        "pain.002.001.03",
        "CstmrPmtStsRpt",
        "",
        Family::StatusReport,
    ),
    (
        "pain.002.001.10",
        "CstmrPmtStsRpt",
        "",
        Family::StatusReport,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Camt,
    StatusReport,
}

/// Why a bank file cannot be read: one line, naming the file and where.
#[derive(Debug, thiserror::Error)]
pub enum BankFileError {
    #[error("bank file {file}: cannot read it: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bank file {file}, line {line}: {message}")]
    Malformed {
        file: String,
        line: u64,
        message: String,
    },
}

/// What a transaction is, as the bank's file tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Money received (`CRDT`): a transfer to match to an invoice or a
    /// customer.
    Transfer,
    /// A direct debit returned (`DBIT` with `RtrInf`) or rejected (a
    /// pain.002 `RJCT`).
    Return,
    /// A debit without return information (bank fees, a transfer we sent),
    /// or a credit that says it returns something (a refund sent back):
    /// nothing to match, listed for the finance team.
    Other,
}

impl Movement {
    /// The ledger's name of it (`bank_entries.kind`).
    pub fn name(self) -> &'static str {
        match self {
            Movement::Transfer => "TRANSFER",
            Movement::Return => "RETURN",
            Movement::Other => "OTHER",
        }
    }
}

/// One transaction of a bank file.
#[derive(Clone, PartialEq, Eq)]
pub struct BankTransaction {
    /// The bank's unique reference: what the transaction is taken once by.
    pub reference: String,
    pub movement: Movement,
    /// `CRDT` (true) or `DBIT`.
    pub credit: bool,
    /// Positive, in euros.
    pub amount: Decimal,
    /// Booking date (else value date); for a pain.002, its creation date.
    pub booking_date: NaiveDate,
    /// `RmtInf/Ustrd` lines and `RmtInf/Strd/CdtrRefInf/Ref` references.
    pub remittance: Vec<String>,
    pub debtor_name: Option<String>,
    /// Compact, upper case. Never printed: see `Debug`.
    pub debtor_iban: Option<String>,
    /// The `EndToEndId` of the debit a return brings back.
    pub end_to_end_id: Option<String>,
    /// A return's reason code (`RtrInf/Rsn/Cd`, `StsRsnInf/Rsn/Cd`).
    pub reason: Option<String>,
}

impl std::fmt::Debug for BankTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankTransaction")
            .field("reference", &self.reference)
            .field("movement", &self.movement)
            .field("credit", &self.credit)
            .field("amount", &self.amount)
            .field("booking_date", &self.booking_date)
            .field("remittance", &self.remittance)
            .field("debtor_name", &self.debtor_name)
            .field(
                "debtor_iban",
                &self.debtor_iban.as_ref().map(|_| "(masked)"),
            )
            .field("end_to_end_id", &self.end_to_end_id)
            .field("reason", &self.reason)
            .finish()
    }
}

/// A bank file read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankFile {
    /// `camt.054.001.02`, `pain.002.001.03`, …
    pub message: String,
    /// `GrpHdr/MsgId`.
    pub message_id: String,
    pub transactions: Vec<BankTransaction>,
    /// Entries not booked (camt) and statuses other than a rejection
    /// (pain.002): not transactions to take.
    pub skipped: u64,
}

/// Reads the bytes of a bank file; `file` names it in messages.
pub fn parse(file: &str, bytes: &[u8]) -> Result<BankFile, BankFileError> {
    let fail = |line: u64, message: String| BankFileError::Malformed {
        file: file.to_string(),
        line,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        fail(
            line_at(bytes, e.valid_up_to()),
            "not UTF-8 text (ISO 20022 files are UTF-8)".to_string(),
        )
    })?;
    let (namespace, root) = tree(text).map_err(|(line, message)| fail(line, message))?;
    let at = |element: &Element, message: String| fail(element.line, message);
    let id = namespace.strip_prefix(ISO_NAMESPACE).ok_or_else(|| {
        at(
            &root,
            format!("<Document> is in namespace '{namespace}', not an ISO 20022 message"),
        )
    })?;
    let Some(&(message, container, holder, family)) = MESSAGES.iter().find(|m| m.0 == id) else {
        return Err(at(
            &root,
            format!("message {id} is not one mvnobill reads (camt.052, camt.053 and camt.054 .001.02, .04, .08; pain.002 .001.03, .10)"),
        ));
    };
    let body = match root.children.as_slice() {
        [body] if body.name == container => body,
        [body] => {
            return Err(at(
                body,
                format!(
                    "<{}> under <Document>: {message} holds <{container}>",
                    body.name
                ),
            ))
        }
        _ => return Err(at(&root, format!("<Document> must hold one <{container}>"))),
    };
    let message_id = body
        .required(&["GrpHdr", "MsgId"])
        .map_err(|(e, m)| at(e, m))?;
    let mut read = BankFile {
        message: message.to_string(),
        message_id: message_id.to_string(),
        transactions: Vec::new(),
        skipped: 0,
    };
    let result = match family {
        Family::Camt => camt(body, holder, &mut read),
        Family::StatusReport => status_report(body, &mut read),
    };
    result.map_err(|(element, message)| at(element, message))?;
    Ok(read)
}

/// A problem and the element it is at.
type Problem<'a> = (&'a Element, String);

// ---- camt.052, camt.053, camt.054 -----------------------------------------

/// Every booked entry of every `Ntfctn` / `Stmt` / `Rpt`.
fn camt<'a>(body: &'a Element, holder: &'a str, read: &mut BankFile) -> Result<(), Problem<'a>> {
    for statement in body.children(holder) {
        for entry in statement.children("Ntry") {
            let status = entry
                .text(&["Sts", "Cd"])
                .or_else(|| entry.text(&["Sts"]))
                .unwrap_or("BOOK");
            if status != "BOOK" {
                read.skipped += 1;
                continue;
            }
            read.transactions.extend(entry_transactions(entry)?);
        }
    }
    Ok(())
}

/// The transactions of one booked `Ntry`.
fn entry_transactions(entry: &Element) -> Result<Vec<BankTransaction>, Problem<'_>> {
    let amount_element = entry
        .child("Amt")
        .ok_or((entry, "<Ntry> has no <Amt>".into()))?;
    let amount = euros(amount_element)?;
    let credit = direction(entry)?.ok_or((entry, "<Ntry> has no <CdtDbtInd>".into()))?;
    let booking_date = ["BookgDt", "ValDt"]
        .iter()
        .find_map(|which| entry.child(which))
        .map(date_choice)
        .transpose()?
        .ok_or((entry, "<Ntry> has neither <BookgDt> nor <ValDt>".into()))?;
    let entry_reference = entry
        .text(&["AcctSvcrRef"])
        .or_else(|| entry.text(&["NtryRef"]));
    let details: Vec<&Element> = entry
        .children("NtryDtls")
        .flat_map(|d| d.children("TxDtls"))
        .collect();
    let no_reference = || {
        (
            entry,
            "<Ntry> has no <AcctSvcrRef> nor <NtryRef>: it cannot be taken once".to_string(),
        )
    };
    if details.is_empty() {
        return Ok(vec![BankTransaction {
            reference: entry_reference.ok_or_else(no_reference)?.to_string(),
            movement: if credit {
                Movement::Transfer
            } else {
                Movement::Other
            },
            credit,
            amount,
            booking_date,
            remittance: Vec::new(),
            debtor_name: None,
            debtor_iban: None,
            end_to_end_id: None,
            reason: None,
        }]);
    }
    let several = details.len() > 1;
    let mut out = Vec::with_capacity(details.len());
    for (i, tx) in details.iter().enumerate() {
        let own_reference = tx.text(&["Refs", "AcctSvcrRef"]);
        let reference = match (own_reference, entry_reference) {
            (Some(own), Some(entry)) if several && own == entry => format!("{own}/{}", i + 1),
            (Some(own), _) => own.to_string(),
            (None, Some(entry)) if several => format!("{entry}/{}", i + 1),
            (None, Some(entry)) => entry.to_string(),
            (None, None) => return Err(no_reference()),
        };
        let amount = if several {
            let element = [
                &["AmtDtls", "TxAmt", "Amt"][..],
                &["Amt"],
                &["AmtDtls", "InstdAmt", "Amt"],
            ]
            .iter()
            .find_map(|path| tx.path(path))
            .ok_or((
                *tx,
                "<TxDtls> of an entry that books several has no amount (<AmtDtls><TxAmt><Amt> or <Amt>)"
                    .to_string(),
            ))?;
            euros(element)?
        } else {
            amount
        };
        let credit = direction(tx)?.unwrap_or(credit);
        let returned = tx.child("RtrInf");
        let reason = match returned {
            Some(info) => Some(
                info.text(&["Rsn", "Cd"])
                    .or_else(|| info.text(&["Rsn", "Prtry"]))
                    .ok_or((info, "<RtrInf> has no <Rsn><Cd>".to_string()))?
                    .to_string(),
            ),
            None => None,
        };
        let movement = match (credit, returned.is_some()) {
            (true, false) => Movement::Transfer,
            (false, true) => Movement::Return,
            _ => Movement::Other,
        };
        let mut remittance: Vec<String> = tx
            .children("RmtInf")
            .flat_map(|r| r.children("Ustrd"))
            .map(|u| u.text.clone())
            .filter(|t| !t.is_empty())
            .collect();
        remittance.extend(
            tx.children("RmtInf")
                .flat_map(|r| r.children("Strd"))
                .filter_map(|s| s.text(&["CdtrRefInf", "Ref"]))
                .map(str::to_string),
        );
        let parties = tx.child("RltdPties");
        let party_text = |paths: &[&[&str]]| {
            parties
                .and_then(|p| paths.iter().find_map(|path| p.text(path)))
                .map(str::to_string)
        };
        out.push(BankTransaction {
            reference,
            movement,
            credit,
            amount,
            booking_date,
            remittance,
            debtor_name: party_text(&[&["Dbtr", "Nm"], &["Dbtr", "Pty", "Nm"]]),
            debtor_iban: party_text(&[&["DbtrAcct", "Id", "IBAN"]]).map(|i| compact(&i)),
            end_to_end_id: tx
                .text(&["Refs", "EndToEndId"])
                .or_else(|| tx.text(&["RtrInf", "OrgnlEndToEndId"]))
                .map(str::to_string),
            reason,
        });
    }
    if several {
        let sum: Decimal = out.iter().map(|t| t.amount).sum();
        if sum != amount {
            return Err((
                entry,
                format!(
                    "the {} <TxDtls> of the entry add up to {sum}, not its <Amt> {amount}",
                    out.len()
                ),
            ));
        }
    }
    Ok(out)
}

/// `CdtDbtInd`: true for `CRDT`, false for `DBIT`, None when absent.
fn direction(element: &Element) -> Result<Option<bool>, Problem<'_>> {
    match element.child("CdtDbtInd") {
        None => Ok(None),
        Some(e) if e.text == "CRDT" => Ok(Some(true)),
        Some(e) if e.text == "DBIT" => Ok(Some(false)),
        Some(e) => Err((e, format!("<CdtDbtInd> '{}': CRDT or DBIT", e.text))),
    }
}

/// A `DateAndDateTimeChoice`: `Dt`, or the day of `DtTm`.
fn date_choice(element: &Element) -> Result<NaiveDate, Problem<'_>> {
    let (value, text) = match (element.child("Dt"), element.child("DtTm")) {
        (Some(e), _) => (e, e.text.as_str()),
        (None, Some(e)) => (e, e.text.get(..10).unwrap_or(&e.text)),
        (None, None) => {
            return Err((
                element,
                format!("<{}> has neither <Dt> nor <DtTm>", element.name),
            ))
        }
    };
    day(value, text)
}

fn day<'a>(element: &'a Element, text: &str) -> Result<NaiveDate, Problem<'a>> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        (
            element,
            format!("<{}> '{}' is not a date", element.name, element.text),
        )
    })
}

/// An amount element (`Amt`, `InstdAmt`): positive euros, at most 2
/// decimals.
fn euros(element: &Element) -> Result<Decimal, Problem<'_>> {
    match element.currency.as_deref() {
        Some("EUR") => {}
        Some(other) => {
            return Err((
                element,
                format!("<{}> in {other}: mvnobill takes euros only", element.name),
            ))
        }
        None => return Err((element, format!("<{}> has no Ccy", element.name))),
    }
    let bad = || {
        (
            element,
            format!(
                "<{}> '{}' is not an amount in euros (digits, a point, at most 2 decimals)",
                element.name, element.text
            ),
        )
    };
    let text = element.text.as_str();
    if text.is_empty()
        || !text.chars().all(|c| c.is_ascii_digit() || c == '.')
        || text.split('.').nth(1).is_some_and(|d| d.len() > 2)
    {
        return Err(bad());
    }
    let amount: Decimal = text.parse().map_err(|_| bad())?;
    if amount <= Decimal::ZERO {
        return Err(bad());
    }
    Ok(amount)
}

fn compact(iban: &str) -> String {
    iban.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

// ---- pain.002 --------------------------------------------------------------

/// Every rejected transaction of a payment status report: a `TxInfAndSts`
/// whose status (its own, else its payment block's, else the group's) is
/// `RJCT`.
fn status_report<'a>(body: &'a Element, read: &mut BankFile) -> Result<(), Problem<'a>> {
    let created = body
        .path(&["GrpHdr", "CreDtTm"])
        .ok_or((body, "<GrpHdr> has no <CreDtTm>".to_string()))?;
    let date = day(created, created.text.get(..10).unwrap_or(&created.text))?;
    let group = body
        .child("OrgnlGrpInfAndSts")
        .ok_or((body, "no <OrgnlGrpInfAndSts>".to_string()))?;
    let original = group.required(&["OrgnlMsgId"])?;
    let group_status = group.text(&["GrpSts"]);
    let group_reason = reason_of(group);
    let blocks: Vec<&Element> = body.children("OrgnlPmtInfAndSts").collect();
    let listed = blocks.iter().any(|b| b.child("TxInfAndSts").is_some());
    if group_status == Some("RJCT") && !listed {
        return Err((
            group,
            format!(
                "the whole file {original} is rejected (GrpSts RJCT, reason {}) without its transactions: nothing was collected; send the corrected file again",
                group_reason.unwrap_or("not given")
            ),
        ));
    }
    for block in blocks {
        let block_status = block.text(&["PmtInfSts"]).or(group_status);
        let block_reason = reason_of(block).or(group_reason);
        for tx in block.children("TxInfAndSts") {
            let status = tx.text(&["TxSts"]).or(block_status);
            if status != Some("RJCT") {
                read.skipped += 1;
                continue;
            }
            let end_to_end = tx.required(&["OrgnlEndToEndId"])?;
            let reason = reason_of(tx)
                .or(block_reason)
                .ok_or((tx, "a rejection without <StsRsnInf><Rsn><Cd>".to_string()))?;
            let amount = tx.path(&["OrgnlTxRef", "Amt", "InstdAmt"]).ok_or((
                tx,
                "<TxInfAndSts> has no <OrgnlTxRef><Amt><InstdAmt>".to_string(),
            ))?;
            let status_id = tx.text(&["StsId"]).unwrap_or("RJCT");
            read.transactions.push(BankTransaction {
                reference: format!("{original}/{end_to_end}/{status_id}"),
                movement: Movement::Return,
                credit: false,
                amount: euros(amount)?,
                booking_date: date,
                remittance: tx
                    .path(&["OrgnlTxRef", "RmtInf"])
                    .map(|r| r.children("Ustrd").map(|u| u.text.clone()).collect())
                    .unwrap_or_default(),
                debtor_name: tx
                    .text(&["OrgnlTxRef", "Dbtr", "Nm"])
                    .or_else(|| tx.text(&["OrgnlTxRef", "Dbtr", "Pty", "Nm"]))
                    .map(str::to_string),
                debtor_iban: tx
                    .text(&["OrgnlTxRef", "DbtrAcct", "Id", "IBAN"])
                    .map(compact),
                end_to_end_id: Some(end_to_end.to_string()),
                reason: Some(reason.to_string()),
            });
        }
    }
    Ok(())
}

/// The first `StsRsnInf/Rsn/Cd` (or `Prtry`) of an element.
fn reason_of(element: &Element) -> Option<&str> {
    element
        .children("StsRsnInf")
        .find_map(|r| r.text(&["Rsn", "Cd"]).or_else(|| r.text(&["Rsn", "Prtry"])))
}

// ---- the XML tree ------------------------------------------------------------

/// An element of the message's namespace: its local name, text (trimmed),
/// `Ccy` attribute, children, and the line it starts on.
#[derive(Debug)]
struct Element {
    name: String,
    text: String,
    currency: Option<String>,
    children: Vec<Element>,
    line: u64,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn path(&self, names: &[&str]) -> Option<&Element> {
        names
            .iter()
            .try_fold(self, |element, name| element.child(name))
    }

    /// The text at a path below, when there and not empty.
    fn text(&self, names: &[&str]) -> Option<&str> {
        self.path(names)
            .map(|e| e.text.as_str())
            .filter(|t| !t.is_empty())
    }

    fn required(&self, names: &[&str]) -> Result<&str, Problem<'_>> {
        self.text(names).ok_or_else(|| {
            (
                self,
                format!("<{}> has no <{}>", self.name, names.join("><")),
            )
        })
    }
}

/// The line of a byte offset (1-based).
fn line_at(bytes: &[u8], offset: usize) -> u64 {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

/// The document as a tree of the root's namespace, with that namespace.
/// Errors: the line and what is wrong.
fn tree(text: &str) -> Result<(String, Element), (u64, String)> {
    let bytes = text.as_bytes();
    let mut reader = NsReader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut namespace: Option<String> = None;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    // Depth inside an element of another namespace, left aside.
    let mut foreign = 0usize;
    loop {
        let position = reader.buffer_position() as usize;
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(read) => read,
            Err(e) => {
                let at = reader.error_position() as usize;
                return Err((line_at(bytes, at), format!("not well-formed XML: {e}")));
            }
        };
        let element_namespace = match resolved {
            ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
            _ => None,
        };
        let line = line_at(bytes, position);
        match event {
            Event::Start(start) => {
                if foreign > 0 {
                    foreign += 1;
                    continue;
                }
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if stack.is_empty() {
                    if root.is_some() {
                        return Err((line, format!("<{name}> after the root element")));
                    }
                    if name != "Document" {
                        return Err((
                            line,
                            format!("the root is <{name}>, not an ISO 20022 <Document>"),
                        ));
                    }
                    namespace = Some(element_namespace.ok_or((
                        line,
                        "<Document> has no namespace: the message cannot be told".to_string(),
                    ))?);
                } else if element_namespace != namespace {
                    foreign = 1;
                    continue;
                }
                let mut currency = None;
                for attribute in start.attributes() {
                    let attribute =
                        attribute.map_err(|e| (line, format!("<{name}>: bad attribute: {e}")))?;
                    if attribute.key.local_name().as_ref() == b"Ccy" {
                        let value = attribute
                            .unescape_value()
                            .map_err(|e| (line, format!("<{name}>: bad Ccy: {e}")))?;
                        currency = Some(value.trim().to_string());
                    }
                }
                stack.push(Element {
                    name,
                    text: String::new(),
                    currency,
                    children: Vec::new(),
                    line,
                });
            }
            Event::End(_) => {
                if foreign > 0 {
                    foreign -= 1;
                    continue;
                }
                let Some(mut element) = stack.pop() else {
                    return Err((line, "an end tag with no start".to_string()));
                };
                element.text = element.text.trim().to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(content) => {
                let content = content
                    .decode()
                    .map_err(|e| (line, format!("bad text: {e}")))?;
                push_text(&mut stack, foreign, &content, line)?;
            }
            Event::CData(content) => {
                let content = content
                    .decode()
                    .map_err(|e| (line, format!("bad CDATA: {e}")))?;
                push_text(&mut stack, foreign, &content, line)?;
            }
            Event::GeneralRef(reference) => {
                let name = reference
                    .decode()
                    .map_err(|e| (line, format!("bad reference: {e}")))?;
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .map(str::to_string)
                        .ok_or((line, format!("unknown entity &{name};")))?,
                    Err(e) => return Err((line, format!("bad character reference: {e}"))),
                };
                push_text(&mut stack, foreign, &resolved, line)?;
            }
            Event::Eof => break,
            // The declaration, comments, processing instructions, DOCTYPE.
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err((
            line_at(bytes, bytes.len()),
            format!("the file ends inside <{}>", open.name),
        ));
    }
    match (namespace, root) {
        (Some(namespace), Some(root)) => Ok((namespace, root)),
        _ => Err((1, "no root element: an empty file?".to_string())),
    }
}

fn push_text(
    stack: &mut [Element],
    foreign: usize,
    content: &str,
    line: u64,
) -> Result<(), (u64, String)> {
    match stack.last_mut() {
        Some(_) if foreign > 0 => Ok(()),
        Some(element) => {
            element.text.push_str(content);
            Ok(())
        }
        None if content.trim().is_empty() => Ok(()),
        None => Err((line, "text outside the root element".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMT054: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr><MsgId>NTF-1</MsgId><CreDtTm>2026-11-20T08:00:00</CreDtTm></GrpHdr>
    <Ntfctn>
      <Id>N1</Id>
      <Ntry>
        <NtryRef>E1</NtryRef>
        <Amt Ccy="EUR">24.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2026-11-19</Dt></BookgDt>
        <ValDt><Dt>2026-11-18</Dt></ValDt>
        <AcctSvcrRef>BANK-1</AcctSvcrRef>
        <NtryDtls><TxDtls>
          <RltdPties>
            <Dbtr><Nm>Jean &amp; Fils</Nm></Dbtr>
            <DbtrAcct><Id><IBAN>FR76 3000 4000 0100 0333 3333 356</IBAN></Id></DbtrAcct>
          </RltdPties>
          <RmtInf><Ustrd>Facture EXM-2026-000003</Ustrd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">30.50</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><DtTm>2026-11-20T10:00:00+01:00</DtTm></BookgDt>
        <ValDt><Dt>2026-11-20</Dt></ValDt>
        <AcctSvcrRef>BANK-2</AcctSvcrRef>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>EXM-2026-000001</EndToEndId></Refs>
            <AmtDtls><TxAmt><Amt Ccy="EUR">10.50</Amt></TxAmt></AmtDtls>
            <RtrInf><Rsn><Cd>AM04</Cd></Rsn></RtrInf>
          </TxDtls>
          <TxDtls>
            <Refs><AcctSvcrRef>BANK-2-B</AcctSvcrRef><EndToEndId>EXM-2026-000002</EndToEndId></Refs>
            <AmtDtls><TxAmt><Amt Ccy="EUR">20.00</Amt></TxAmt></AmtDtls>
            <RtrInf><Rsn><Cd>AC04</Cd></Rsn></RtrInf>
            <SplmtryData xmlns="urn:bank:extra"><Envlp><Amt Ccy="USD">1</Amt></Envlp></SplmtryData>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <NtryRef>P1</NtryRef>
        <Amt Ccy="EUR">5.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>PDNG</Sts>
        <ValDt><Dt>2026-11-21</Dt></ValDt>
      </Ntry>
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>
"#;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn refused(xml: &str) -> String {
        parse("bank.xml", xml.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn a_notification_reads_transfers_and_returns_entry_by_entry() {
        let file = parse("bank.xml", CAMT054.as_bytes()).unwrap();
        assert_eq!(file.message, "camt.054.001.02");
        assert_eq!(file.message_id, "NTF-1");
        assert_eq!(file.skipped, 1, "the pending entry");
        let [transfer, first, second] = file.transactions.as_slice() else {
            panic!("{:?}", file.transactions)
        };
        assert_eq!(transfer.reference, "BANK-1");
        assert_eq!(transfer.movement, Movement::Transfer);
        assert_eq!(transfer.amount, "24.00".parse::<Decimal>().unwrap());
        assert_eq!(transfer.booking_date, date("2026-11-19"));
        assert_eq!(transfer.remittance, vec!["Facture EXM-2026-000003"]);
        assert_eq!(transfer.debtor_name.as_deref(), Some("Jean & Fils"));
        assert_eq!(
            transfer.debtor_iban.as_deref(),
            Some("FR7630004000010003333333356")
        );
        // Two returns booked as one entry: one reference each.
        assert_eq!(first.reference, "BANK-2/1");
        assert_eq!(first.movement, Movement::Return);
        assert_eq!(first.amount, "10.50".parse::<Decimal>().unwrap());
        assert_eq!(first.booking_date, date("2026-11-20"));
        assert_eq!(first.end_to_end_id.as_deref(), Some("EXM-2026-000001"));
        assert_eq!(first.reason.as_deref(), Some("AM04"));
        assert_eq!(second.reference, "BANK-2-B");
        assert_eq!(second.reason.as_deref(), Some("AC04"));
        assert_eq!(second.amount, "20.00".parse::<Decimal>().unwrap());
    }

    #[test]
    fn a_statement_of_version_08_reads_the_same() {
        let xml = CAMT054
            .replace("camt.054.001.02", "camt.053.001.08")
            .replace("BkToCstmrDbtCdtNtfctn>", "BkToCstmrStmt>")
            .replace("Ntfctn>", "Stmt>")
            .replace("<Sts>BOOK</Sts>", "<Sts><Cd>BOOK</Cd></Sts>")
            .replace(
                "<Dbtr><Nm>Jean &amp; Fils</Nm></Dbtr>",
                "<Dbtr><Pty><Nm>Jean</Nm></Pty></Dbtr>",
            );
        let file = parse("bank.xml", xml.as_bytes()).unwrap();
        assert_eq!(file.message, "camt.053.001.08");
        assert_eq!(file.transactions.len(), 3);
        assert_eq!(file.transactions[0].debtor_name.as_deref(), Some("Jean"));
    }

    #[test]
    fn a_status_report_reads_its_rejections_only() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">
  <CstmrPmtStsRpt>
    <GrpHdr><MsgId>STS-1</MsgId><CreDtTm>2026-11-18T09:30:00</CreDtTm></GrpHdr>
    <OrgnlGrpInfAndSts>
      <OrgnlMsgId>EXM-SEPA-2026-10</OrgnlMsgId><OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId>
      <GrpSts>PART</GrpSts>
    </OrgnlGrpInfAndSts>
    <OrgnlPmtInfAndSts>
      <OrgnlPmtInfId>P1</OrgnlPmtInfId>
      <TxInfAndSts>
        <StsId>S1</StsId><OrgnlEndToEndId>EXM-2026-000001</OrgnlEndToEndId><TxSts>RJCT</TxSts>
        <StsRsnInf><Rsn><Cd>AM04</Cd></Rsn></StsRsnInf>
        <OrgnlTxRef><Amt><InstdAmt Ccy="EUR">24.00</InstdAmt></Amt>
          <Dbtr><Nm>Elodie</Nm></Dbtr><DbtrAcct><Id><IBAN>FR7630004000010001111111177</IBAN></Id></DbtrAcct>
        </OrgnlTxRef>
      </TxInfAndSts>
      <TxInfAndSts>
        <OrgnlEndToEndId>EXM-2026-000002</OrgnlEndToEndId><TxSts>ACCP</TxSts>
      </TxInfAndSts>
    </OrgnlPmtInfAndSts>
  </CstmrPmtStsRpt>
</Document>"#;
        let file = parse("sts.xml", xml.as_bytes()).unwrap();
        assert_eq!(file.message, "pain.002.001.03");
        assert_eq!(file.skipped, 1);
        let [rejected] = file.transactions.as_slice() else {
            panic!("{:?}", file.transactions)
        };
        assert_eq!(rejected.reference, "EXM-SEPA-2026-10/EXM-2026-000001/S1");
        assert_eq!(rejected.movement, Movement::Return);
        assert_eq!(rejected.booking_date, date("2026-11-18"));
        assert_eq!(rejected.reason.as_deref(), Some("AM04"));
        assert_eq!(rejected.amount, "24.00".parse::<Decimal>().unwrap());
        // The IBAN never shows in a Debug print.
        let debug = format!("{rejected:?}");
        assert!(!debug.contains("FR76"), "{debug}");
    }

    #[test]
    fn a_malformed_file_is_refused_in_one_line_naming_the_line_and_element() {
        assert_eq!(
            refused(&CAMT054.replace(
                r#"<Amt Ccy="EUR">24.00</Amt>"#,
                r#"<Amt Ccy="USD">24.00</Amt>"#
            )),
            "bank file bank.xml, line 9: <Amt> in USD: mvnobill takes euros only"
        );
        assert_eq!(
            refused(&CAMT054.replace(">24.00<", ">24.005<")),
            "bank file bank.xml, line 9: <Amt> '24.005' is not an amount in euros (digits, a point, at most 2 decimals)"
        );
        assert_eq!(
            refused(&CAMT054.replace("<AcctSvcrRef>BANK-2</AcctSvcrRef>", "")),
            "bank file bank.xml, line 23: <Ntry> has no <AcctSvcrRef> nor <NtryRef>: it cannot be taken once"
        );
        assert_eq!(
            refused(&CAMT054.replace(">10.50<", ">10.00<")),
            "bank file bank.xml, line 23: the 2 <TxDtls> of the entry add up to 30.00, not its <Amt> 30.50"
        );
        assert_eq!(
            refused(&CAMT054.replace("<Cd>AM04</Cd>", "")),
            "bank file bank.xml, line 34: <RtrInf> has no <Rsn><Cd>"
        );
        let broken = refused(&CAMT054.replace("</Ntfctn>", "</Ntfctn2>"));
        assert!(
            broken.starts_with("bank file bank.xml, line 51: not well-formed XML"),
            "{broken}"
        );
        assert_eq!(
            refused(&CAMT054.replace("camt.054.001.02", "camt.054.001.13")),
            "bank file bank.xml, line 2: message camt.054.001.13 is not one mvnobill reads (camt.052, camt.053 and camt.054 .001.02, .04, .08; pain.002 .001.03, .10)"
        );
        assert_eq!(
            refused("<Document><x/></Document>"),
            "bank file bank.xml, line 1: <Document> has no namespace: the message cannot be told"
        );
        assert_eq!(
            refused(""),
            "bank file bank.xml, line 1: no root element: an empty file?"
        );
        for message in [
            refused(&CAMT054.replace("CRDT", "CREDIT")),
            refused(&CAMT054.replace("<Dt>2026-11-19</Dt>", "<Dt>19/11/2026</Dt>")),
        ] {
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains("FR76"), "{message}");
        }
    }
}
