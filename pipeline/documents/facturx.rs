//! Factur-X for business customers (France's e-invoicing): the invoice as
//! UN/CEFACT CII XML at the EN 16931 profile ([`cii_xml`]), embedded in the
//! PDF that Chromium printed, which becomes a PDF/A-3B ([`embed`]).
//!
//! The XML follows the Factur-X 1.0 EN 16931 XSD (element order matters):
//! seller and buyer with their SIREN (scheme 0002) and VAT numbers, the
//! billing period, the payment means (SEPA direct debit 59 or SEPA credit
//! transfer 58), one VAT breakdown per category and rate (BG-23), the due
//! date and the totals. Each invoice line is billed as quantity 1 (C62) at a net price
//! equal to its amount, so that EN 16931's sum rules hold to the cent whatever
//! unit the line counts (days, seconds, KB).
//!
//! VAT categories (rating.md §6) and what EN 16931 asks of each, checked by
//! the official Schematron in the tests (`tests/en16931.rs`):
//!
//! | category | line rate (BT-152) | BG-23 reason (BT-120 / BT-121) | also |
//! |---|---|---|---|
//! | `S` standard | 20 or 8.5 | none (BR-S-10) | seller VAT id (BR-S-02) |
//! | `E` exempt | 0 | the product's text, no code | seller VAT id (BR-E-02) |
//! | `AE` reverse charge | 0 | "Autoliquidation", `VATEX-EU-AE` | seller and buyer VAT ids (BR-AE-02) |
//! | `K` intra-community | 0 | article 262 ter I, `VATEX-EU-IC` | both VAT ids (BR-IC-02), deliver-to country (BR-IC-12), delivery date (BR-IC-11) |
//! | `G` export | 0 | article 262 I, `VATEX-EU-G` | seller VAT id (BR-G-02) |
//! | `O` outside scope | none (BR-O-05, BR-O-09) | "hors champ", `VATEX-EU-O` | no VAT id of either party (BR-O-02), no other category (BR-O-11) |
//!
//! An exempt product's text may name any article of the CGI: a VATEX code
//! chosen for it could be wrong, and BR-E-10 asks for the text *or* the
//! code, so `E` carries the text alone.
//!
//! [`embed`] adds to the PDF: the XML as the associated file `factur-x.xml`
//! (`/AFRelationship /Data`), an XMP packet declaring PDF/A-3B and the
//! Factur-X extension schema, an sRGB output intent, an Info dictionary that
//! matches the XMP and a trailer `/ID` hashed from the input. Nothing depends
//! on the clock: the same input gives the same bytes.

use crate::core::text::one_line;
use chrono::NaiveDate;
use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream, StringFormat};
use quick_xml::events::{BytesDecl, BytesEnd, BytesPI, Event};
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};

use crate::documents::document::{
    markup_start, markup_text, vat_breakdown, Customer, InvoiceDocument,
};

/// The name the Factur-X specification gives the embedded XML.
pub const XML_FILENAME: &str = "factur-x.xml";

/// EN 16931 guideline (BT-24), the Factur-X "EN 16931" (ex-Comfort) profile.
const GUIDELINE_ID: &str = "urn:cen.eu:en16931:2017";

/// sRGB (ICC v2) from Debian's `icc-profiles-free`, zlib licence, see
/// `data/README.md`.
const SRGB_ICC: &[u8] = include_bytes!("../../data/sRGB.icc");

/// `/Creator` and `xmp:CreatorTool`; `/Producer` and `pdf:Producer`.
const CREATOR: &str = "mvnobill";
const PRODUCER: &str = "mvnobill (lopdf)";

#[derive(Debug, thiserror::Error)]
pub enum FacturxError {
    #[error("cannot read the printed PDF: {0}")]
    Load(String),
    #[error("the printed PDF is encrypted: cannot make it PDF/A")]
    Encrypted,
    #[error("the printed PDF has no usable catalog: {0}")]
    Catalog(String),
    #[error("invoice {invoice}: {message}, its Factur-X would break EN 16931")]
    Totals { invoice: String, message: String },
    #[error("cannot write the Factur-X PDF: {0}")]
    Write(String),
}

// ---------------------------------------------------------------------------
// The CII XML

/// The invoice a credit note credits: BT-25, its number, and BT-26, its
/// issue date.
#[derive(Debug, Clone, Copy)]
pub struct CreditedInvoice<'a> {
    pub number: &'a str,
    pub issue_date: NaiveDate,
}

/// The Factur-X (ZUGFeRD 2) CII XML of an invoice, profile EN 16931.
pub fn cii_xml(doc: &InvoiceDocument) -> String {
    cross_industry_invoice(doc, None)
}

/// The CII XML of a credit note (UNTDID 1001 type 381): `doc` is the note
/// laid out as a document (its own number and date, its lines, its
/// positive totals: EN 16931 states a credit note's amounts as positive),
/// referring to the invoice it credits. It carries no payment means and no
/// due date: the seller refunds, and the terms (BT-20) say how.
pub fn credit_note_xml(doc: &InvoiceDocument, credited: CreditedInvoice<'_>) -> String {
    cross_industry_invoice(doc, Some(credited))
}

fn cross_industry_invoice(doc: &InvoiceDocument, credited: Option<CreditedInvoice<'_>>) -> String {
    let mut x = Xml::new();
    x.declaration();
    x.open_with(
        "rsm:CrossIndustryInvoice",
        &[
            (
                "xmlns:rsm",
                "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
            ),
            (
                "xmlns:qdt",
                "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
            ),
            (
                "xmlns:ram",
                "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
            ),
            ("xmlns:xs", "http://www.w3.org/2001/XMLSchema"),
            (
                "xmlns:udt",
                "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
            ),
        ],
    );

    x.open("rsm:ExchangedDocumentContext");
    x.open("ram:BusinessProcessSpecifiedDocumentContextParameter");
    x.leaf("ram:ID", billing_framework(doc));
    x.close("ram:BusinessProcessSpecifiedDocumentContextParameter");
    x.open("ram:GuidelineSpecifiedDocumentContextParameter");
    x.leaf("ram:ID", GUIDELINE_ID);
    x.close("ram:GuidelineSpecifiedDocumentContextParameter");
    x.close("rsm:ExchangedDocumentContext");

    x.open("rsm:ExchangedDocument");
    x.leaf("ram:ID", &doc.invoice_number);
    x.leaf(
        "ram:TypeCode",
        if credited.is_some() { "381" } else { "380" },
    );
    x.date("ram:IssueDateTime", doc.issue_date);
    for (subject, content) in legal_notes(&doc.customer) {
        x.open("ram:IncludedNote");
        x.leaf("ram:Content", content);
        x.leaf("ram:SubjectCode", subject);
        x.close("ram:IncludedNote");
    }
    x.close("rsm:ExchangedDocument");

    x.open("rsm:SupplyChainTradeTransaction");
    for (index, line) in doc.lines.iter().enumerate() {
        x.open("ram:IncludedSupplyChainTradeLineItem");
        x.open("ram:AssociatedDocumentLineDocument");
        x.leaf("ram:LineID", &(index + 1).to_string());
        x.close("ram:AssociatedDocumentLineDocument");
        x.open("ram:SpecifiedTradeProduct");
        x.leaf_opt("ram:SellerAssignedID", &line.code);
        x.leaf("ram:Name", &line_name(line));
        x.close("ram:SpecifiedTradeProduct");
        // An item net price may not be negative (BR-27): a credit line is
        // quantity -1 at the positive price.
        let quantity = if line.amount_ht < Decimal::ZERO {
            "-1"
        } else {
            "1"
        };
        x.open("ram:SpecifiedLineTradeAgreement");
        x.open("ram:NetPriceProductTradePrice");
        x.leaf("ram:ChargeAmount", &amount(line.amount_ht.abs()));
        x.close("ram:NetPriceProductTradePrice");
        x.close("ram:SpecifiedLineTradeAgreement");
        x.open("ram:SpecifiedLineTradeDelivery");
        x.leaf_with("ram:BilledQuantity", &[("unitCode", "C62")], quantity);
        x.close("ram:SpecifiedLineTradeDelivery");
        x.open("ram:SpecifiedLineTradeSettlement");
        x.line_vat(&line.vat_category, line.vat_rate);
        if let (Some(start), Some(end)) = (line.period_start, line.period_end) {
            if start <= end {
                x.period(start, end);
            }
        }
        x.open("ram:SpecifiedTradeSettlementLineMonetarySummation");
        x.leaf("ram:LineTotalAmount", &amount(line.amount_ht));
        x.close("ram:SpecifiedTradeSettlementLineMonetarySummation");
        x.close("ram:SpecifiedLineTradeSettlement");
        x.close("ram:IncludedSupplyChainTradeLineItem");
    }

    // BR-O-02: outside the scope of VAT, neither party's VAT identifier is
    // stated (the page still prints the seller's).
    let vat_ids = !has_category(doc, "O");
    x.open("ram:ApplicableHeaderTradeAgreement");
    seller(&mut x, doc, vat_ids);
    buyer(&mut x, &doc.customer, vat_ids);
    x.close("ram:ApplicableHeaderTradeAgreement");

    // BT-72: a month of service is supplied when its period ends (the period
    // itself is BG-14 below); it also keeps the element from being empty,
    // which the EN 16931 schematron warns about (PEPPOL-EN16931-R008).
    x.open("ram:ApplicableHeaderTradeDelivery");
    if has_category(doc, "K") {
        // BR-IC-12: an intra-community supply states where the goods go
        // (BG-13, the customer's address, BT-80 its country).
        ship_to(&mut x, &doc.customer);
    }
    x.open("ram:ActualDeliverySupplyChainEvent");
    x.date("ram:OccurrenceDateTime", doc.period_end);
    x.close("ram:ActualDeliverySupplyChainEvent");
    x.close("ram:ApplicableHeaderTradeDelivery");

    x.open("ram:ApplicableHeaderTradeSettlement");
    settlement(&mut x, doc, credited);
    x.close("ram:ApplicableHeaderTradeSettlement");

    x.close("rsm:SupplyChainTradeTransaction");
    x.close("rsm:CrossIndustryInvoice");
    let mut xml = x.into_string();
    xml.push('\n');
    xml
}

fn seller(x: &mut Xml, doc: &InvoiceDocument, vat_id: bool) {
    let org = &doc.integrator;
    x.open("ram:SellerTradeParty");
    x.leaf("ram:Name", &org.name);
    // BT-33, seller additional legal information: the legal form and capital
    // French law asks for.
    x.leaf_opt("ram:Description", opt(&org.legal_form));
    let siren = siren(opt(&org.siret));
    if siren.is_some() || org.brand.is_some() {
        x.open("ram:SpecifiedLegalOrganization");
        if let Some(siren) = &siren {
            x.leaf_with("ram:ID", &[("schemeID", "0002")], siren);
        }
        x.leaf_opt("ram:TradingBusinessName", opt(&org.brand));
        x.close("ram:SpecifiedLegalOrganization");
    }
    let address = SellerAddress::parse(&org.address);
    x.open("ram:PostalTradeAddress");
    x.leaf_opt("ram:PostcodeCode", address.postcode);
    for (tag, line) in ["ram:LineOne", "ram:LineTwo", "ram:LineThree"]
        .into_iter()
        .zip(&address.lines)
    {
        x.leaf_opt(tag, line);
    }
    x.leaf_opt("ram:CityName", address.city);
    x.leaf("ram:CountryID", "FR");
    x.close("ram:PostalTradeAddress");
    email(x, opt(&org.billing_email));
    if vat_id {
        vat_registration(x, opt(&org.vat_number));
    }
    x.close("ram:SellerTradeParty");
}

fn buyer(x: &mut Xml, customer: &Customer, vat_id: bool) {
    x.open("ram:BuyerTradeParty");
    x.leaf("ram:Name", &customer.name);
    if let Some(siren) = siren(&customer.siret) {
        x.open("ram:SpecifiedLegalOrganization");
        x.leaf_with("ram:ID", &[("schemeID", "0002")], &siren);
        x.close("ram:SpecifiedLegalOrganization");
    }
    x.open("ram:PostalTradeAddress");
    x.leaf_opt("ram:PostcodeCode", &customer.postcode);
    x.leaf_opt("ram:LineOne", &customer.address1);
    x.leaf_opt("ram:LineTwo", &customer.address2);
    x.leaf_opt("ram:CityName", &customer.city);
    x.leaf("ram:CountryID", country(customer));
    x.close("ram:PostalTradeAddress");
    email(x, &customer.email);
    if vat_id {
        vat_registration(x, &customer.vat_number);
    }
    x.close("ram:BuyerTradeParty");
}

/// BG-13, the deliver-to address: the customer's (BT-70 to BT-80).
fn ship_to(x: &mut Xml, customer: &Customer) {
    x.open("ram:ShipToTradeParty");
    x.leaf("ram:Name", &customer.name);
    x.open("ram:PostalTradeAddress");
    x.leaf_opt("ram:PostcodeCode", &customer.postcode);
    x.leaf_opt("ram:LineOne", &customer.address1);
    x.leaf_opt("ram:LineTwo", &customer.address2);
    x.leaf_opt("ram:CityName", &customer.city);
    x.leaf("ram:CountryID", country(customer));
    x.close("ram:PostalTradeAddress");
    x.close("ram:ShipToTradeParty");
}

/// The customer's country (ISO 3166 alpha-2), France when blank.
fn country(customer: &Customer) -> &str {
    let country = customer.country.trim();
    if country.is_empty() {
        "FR"
    } else {
        country
    }
}

/// Whether a line of the document is in VAT category `category`.
fn has_category(doc: &InvoiceDocument, category: &str) -> bool {
    doc.lines
        .iter()
        .any(|line| line.vat_category.trim() == category)
}

/// BT-121, the VATEX code of a category's exemption (CEF VATEX list); none
/// for `S`, and none for `E`, whose product text (BT-120) may name any
/// article (see the module's table).
fn exemption_code(category: &str) -> Option<&'static str> {
    match category {
        "AE" => Some("VATEX-EU-AE"),
        "K" => Some("VATEX-EU-IC"),
        "G" => Some("VATEX-EU-G"),
        "O" => Some("VATEX-EU-O"),
        _ => None,
    }
}

fn settlement(x: &mut Xml, doc: &InvoiceDocument, credited: Option<CreditedInvoice<'_>>) {
    let payment = &doc.payment;
    let org = &doc.integrator;
    let direct_debit = payment.method == "SEPA_DD" && credited.is_none();
    if direct_debit {
        // BT-90, the creditor identifier (ICS).
        let ics = first_filled(&payment.creditor_id, opt(&org.sepa_ics));
        x.leaf_opt("ram:CreditorReferenceID", &compact(ics));
    }
    // BT-83, the remittance information a transfer quotes.
    x.leaf("ram:PaymentReference", &doc.invoice_number);
    x.leaf("ram:InvoiceCurrencyCode", "EUR");

    if credited.is_none() {
        payment_means(x, doc);
    }

    // BG-23, one per category and rate; the exemption reason where the
    // category is not `S` (BR-E-10, BR-AE-10, BR-IC-10, BR-G-10, BR-O-10),
    // no rate outside the scope of VAT (BR-O-09).
    for vat in &doc.vat {
        let category = vat.category.as_str();
        x.open("ram:ApplicableTradeTax");
        x.leaf("ram:CalculatedAmount", &amount(vat.amount));
        x.leaf("ram:TypeCode", "VAT");
        if category != "S" {
            x.leaf_opt("ram:ExemptionReason", &vat.exemption);
        }
        x.leaf("ram:BasisAmount", &amount(vat.base_ht));
        x.leaf("ram:CategoryCode", category);
        if let Some(code) = exemption_code(category) {
            x.leaf("ram:ExemptionReasonCode", code);
        }
        if category != "O" {
            x.leaf("ram:RateApplicablePercent", &percent(vat.rate));
        }
        x.close("ram:ApplicableTradeTax");
    }

    x.period(doc.period_start, doc.period_end);

    x.open("ram:SpecifiedTradePaymentTerms");
    match credited {
        None => x.date("ram:DueDateDateTime", doc.due_date),
        Some(invoice) => x.leaf("ram:Description", &refund_terms(doc, invoice)),
    }
    if direct_debit {
        x.leaf_opt("ram:DirectDebitMandateID", payment.mandate_rum.trim());
    }
    x.close("ram:SpecifiedTradePaymentTerms");

    let line_total: Decimal = doc.lines.iter().map(|line| line.amount_ht).sum();
    x.open("ram:SpecifiedTradeSettlementHeaderMonetarySummation");
    x.leaf("ram:LineTotalAmount", &amount(line_total));
    x.leaf("ram:TaxBasisTotalAmount", &amount(doc.total_ht));
    x.leaf_with(
        "ram:TaxTotalAmount",
        &[("currencyID", "EUR")],
        &amount(doc.total_vat),
    );
    x.leaf("ram:GrandTotalAmount", &amount(doc.total_ttc));
    x.leaf("ram:DuePayableAmount", &amount(doc.total_ttc));
    x.close("ram:SpecifiedTradeSettlementHeaderMonetarySummation");

    // BG-3, the preceding invoice a credit note corrects.
    if let Some(invoice) = credited {
        x.open("ram:InvoiceReferencedDocument");
        x.leaf("ram:IssuerAssignedID", invoice.number);
        x.open("ram:FormattedIssueDateTime");
        x.leaf_with(
            "qdt:DateTimeString",
            &[("format", "102")],
            &invoice.issue_date.format("%Y%m%d").to_string(),
        );
        x.close("ram:FormattedIssueDateTime");
        x.close("ram:InvoiceReferencedDocument");
    }
}

/// BT-81 to BT-87 of an invoice: how it is paid.
fn payment_means(x: &mut Xml, doc: &InvoiceDocument) {
    let payment = &doc.payment;
    let org = &doc.integrator;
    x.open("ram:SpecifiedTradeSettlementPaymentMeans");
    match payment.method.as_str() {
        "SEPA_DD" => {
            x.leaf("ram:TypeCode", "59");
            x.leaf("ram:Information", "Prélèvement SEPA");
            // BT-91 (debited account) is left out on purpose. EN 16931 makes
            // it optional (no rule requires it for code 59), and it is an
            // account *identifier*: the masked IBAN we hold
            // (`**** … *189`) identifies nothing and would fail any IBAN
            // check a buyer's software runs, while the clear IBAN is not
            // ours to spread in a machine-read file. The mandate (BT-89) and
            // the creditor identifier (BT-90) already tie the debit to the
            // debtor's account; the printed invoice shows the masked IBAN.
        }
        "TRANSFER" => {
            x.leaf("ram:TypeCode", "58");
            x.leaf("ram:Information", "Virement SEPA");
            // BT-84 is required for a credit transfer (BR-61).
            let iban = compact(first_filled(&payment.bank_iban, opt(&org.bank_iban)));
            if !iban.is_empty() {
                x.open("ram:PayeePartyCreditorFinancialAccount");
                x.leaf("ram:IBANID", &iban);
                x.close("ram:PayeePartyCreditorFinancialAccount");
            }
            let bic = compact(first_filled(&payment.bank_bic, opt(&org.bank_bic)));
            if !bic.is_empty() {
                x.open("ram:PayeeSpecifiedCreditorFinancialInstitution");
                x.leaf("ram:BICID", &bic);
                x.close("ram:PayeeSpecifiedCreditorFinancialInstitution");
            }
        }
        // UNTDID 4461 "instrument not defined".
        _ => x.leaf("ram:TypeCode", "1"),
    }
    x.close("ram:SpecifiedTradeSettlementPaymentMeans");
}

/// BT-20 of a credit note: how the seller gives the amount back, as the
/// printed note says it.
fn refund_terms(doc: &InvoiceDocument, invoice: CreditedInvoice<'_>) -> String {
    let total = amount(doc.total_ttc);
    if doc.payment.method == "SEPA_DD" {
        format!("Avoir de {total} EUR TTC remboursé par virement sur le compte prélevé.")
    } else {
        format!(
            "Avoir de {total} EUR TTC à déduire du règlement de la facture {} ; \
             remboursé par virement si elle est réglée.",
            invoice.number
        )
    }
}

/// BT-23, the French "cadre de facturation" the e-invoicing reform asks
/// for (rule BR-FR-08): S1 an invoice for services, B1 for goods, M1 for both
/// (a handset sold with the month's service); none is already paid.
fn billing_framework(doc: &InvoiceDocument) -> &'static str {
    let goods = doc.lines.iter().any(|line| line.kind == "EQUIPMENT");
    let services = doc.lines.iter().any(|line| line.kind != "EQUIPMENT");
    match (goods, services) {
        (true, true) => "M1",
        (true, false) => "B1",
        _ => "S1",
    }
}

/// The notes French B2B invoices carry (and the CTC rules check by subject
/// code), worded as the printed invoice words them.
fn legal_notes(customer: &Customer) -> Vec<(&'static str, &'static str)> {
    let mut notes = vec![("AAB", "Pas d'escompte pour paiement anticipé.")];
    if customer.is_business() {
        notes.push((
            "PMD",
            "En cas de retard de paiement, des pénalités de retard sont exigibles au taux \
             de trois fois le taux d'intérêt légal (article L441-10 du Code de commerce).",
        ));
        notes.push((
            "PMT",
            "En cas de retard de paiement, indemnité forfaitaire pour frais de recouvrement \
             de 40 € (article D441-5 du Code de commerce).",
        ));
    } else {
        notes.push((
            "PMD",
            "En cas de retard de paiement, des pénalités de retard au taux d'intérêt légal \
             peuvent être appliquées.",
        ));
    }
    notes
}

fn line_name(line: &crate::documents::document::InvoiceLine) -> String {
    // A regularisation names the month it corrects, a termination fee says
    // what it is (account.md §4, §6).
    let printed = line.printed_label();
    let label = if line.label.trim().is_empty() && printed == line.label.trim() {
        first_filled(&line.code, &line.kind)
    } else {
        printed.as_str()
    };
    let msisdn = line.msisdn.trim();
    if msisdn.is_empty() {
        label.to_string()
    } else {
        format!("{label} ({msisdn})")
    }
}

/// The EN 16931 sums the XML states, checked on the document: a Factur-X
/// whose totals don't add up is refused by the buyer's platform.
fn check_totals(doc: &InvoiceDocument) -> Result<(), String> {
    let cents = |d: Decimal| d.round_dp(2) == d;
    if let Some(line) = doc.lines.iter().find(|line| !cents(line.amount_ht)) {
        return Err(format!(
            "line '{}' amount {} is not in cents",
            line.label, line.amount_ht
        ));
    }
    let lines: Decimal = doc.lines.iter().map(|line| line.amount_ht).sum();
    if lines != doc.total_ht {
        return Err(format!(
            "lines sum to {lines}, total_ht is {}",
            doc.total_ht
        ));
    }
    // The breakdown is the lines' (rating.md §6, BR-CO-17) and adds up to
    // the VAT total.
    let breakdown = vat_breakdown(&doc.lines, doc.total_vat)?;
    if breakdown != doc.vat {
        return Err(format!(
            "its VAT breakdown is not its lines' per category and rate ({})",
            breakdown
                .iter()
                .map(|vat| format!(
                    "{} {} % on {}: {}",
                    vat.category, vat.rate, vat.base_ht, vat.amount
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // BR-O-11 to BR-O-14: outside the scope of VAT, nothing else.
    if has_category(doc, "O") && doc.vat.iter().any(|vat| vat.category != "O") {
        return Err(
            "VAT category O (outside the scope of VAT) is mixed with other categories".to_string(),
        );
    }
    // BR-AE-02, BR-IC-02: reverse charge and intra-community supplies name
    // the buyer's VAT number.
    for category in ["AE", "K"] {
        if has_category(doc, category) && compact(&doc.customer.vat_number).is_empty() {
            return Err(format!(
                "VAT category {category} without the customer's VAT number"
            ));
        }
    }
    if doc.total_ht + doc.total_vat != doc.total_ttc {
        return Err(format!(
            "total_ht {} + total_vat {} is not total_ttc {}",
            doc.total_ht, doc.total_vat, doc.total_ttc
        ));
    }
    Ok(())
}

/// A seller address from `integrator.toml`'s lines: the last one is
/// "postcode city" when it starts with 5 digits, the others are street lines.
struct SellerAddress<'a> {
    lines: Vec<String>,
    postcode: &'a str,
    city: &'a str,
}

impl<'a> SellerAddress<'a> {
    fn parse(address: &'a [String]) -> SellerAddress<'a> {
        let mut lines: Vec<&str> = address
            .iter()
            .map(|line| line.trim())
            .filter(|line| !line.is_empty())
            .collect();
        let (mut postcode, mut city) = ("", "");
        if let Some(last) = lines.last().copied() {
            let bytes = last.as_bytes();
            let five_digits = bytes.len() >= 5
                && bytes[..5].iter().all(u8::is_ascii_digit)
                && bytes.get(5).is_none_or(|b| !b.is_ascii_digit());
            if five_digits {
                postcode = &last[..5];
                city = last[5..].trim();
                lines.pop();
            }
        }
        // CII has three street lines: the rest joins the third.
        let mut street: Vec<String> = lines.iter().take(2).map(|l| l.to_string()).collect();
        if lines.len() > 2 {
            street.push(lines[2..].join(", "));
        }
        SellerAddress {
            lines: street,
            postcode,
            city,
        }
    }
}

fn email(x: &mut Xml, address: &str) {
    let address = address.trim();
    if !address.is_empty() {
        // BT-34 / BT-49, electronic address, EAS scheme EM (e-mail).
        x.open("ram:URIUniversalCommunication");
        x.leaf_with("ram:URIID", &[("schemeID", "EM")], address);
        x.close("ram:URIUniversalCommunication");
    }
}

fn vat_registration(x: &mut Xml, vat_number: &str) {
    let vat_number = compact(vat_number);
    if !vat_number.is_empty() {
        x.open("ram:SpecifiedTaxRegistration");
        x.leaf_with("ram:ID", &[("schemeID", "VA")], &vat_number);
        x.close("ram:SpecifiedTaxRegistration");
    }
}

/// The SIREN, the first 9 digits of a SIRET, when it has them.
fn siren(siret: &str) -> Option<String> {
    let digits = compact(siret);
    (digits.len() >= 9 && digits.as_bytes()[..9].iter().all(u8::is_ascii_digit))
        .then(|| digits[..9].to_string())
}

fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

fn first_filled<'a>(first: &'a str, second: &'a str) -> &'a str {
    if first.trim().is_empty() {
        second.trim()
    } else {
        first.trim()
    }
}

/// An amount with exactly 2 decimals (`1234.50`, `-3.00`).
fn amount(value: Decimal) -> String {
    let mut value = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    if value.is_zero() {
        value = Decimal::ZERO;
    }
    value.rescale(2);
    value.to_string()
}

/// A percentage without trailing zeros (`20`, `5.5`).
fn percent(value: Decimal) -> String {
    value.normalize().to_string()
}

/// The XML through quick-xml's writer, indented by 2 spaces as the SEPA
/// file is; every text and attribute value goes through
/// [`escape_markup`](crate::documents::document::escape_markup), which also
/// drops the characters XML 1.0 forbids.
struct Xml {
    writer: quick_xml::Writer<Vec<u8>>,
}

impl Xml {
    fn new() -> Xml {
        Xml {
            writer: quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2),
        }
    }

    fn write(&mut self, event: Event<'_>) {
        self.writer
            .write_event(event)
            .expect("writing to memory cannot fail");
    }

    /// `<?xml version="1.0" encoding="UTF-8"?>`
    fn declaration(&mut self) {
        self.write(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    }

    fn open(&mut self, tag: &str) {
        self.open_with(tag, &[]);
    }

    fn open_with(&mut self, tag: &str, attrs: &[(&str, &str)]) {
        self.write(Event::Start(markup_start(tag, attrs)));
    }

    fn close(&mut self, tag: &str) {
        self.write(Event::End(BytesEnd::new(tag)));
    }

    fn leaf(&mut self, tag: &str, text: &str) {
        self.leaf_with(tag, &[], text);
    }

    /// A leaf only when the text is not blank.
    fn leaf_opt(&mut self, tag: &str, text: &str) {
        if !text.trim().is_empty() {
            self.leaf(tag, text.trim());
        }
    }

    fn leaf_with(&mut self, tag: &str, attrs: &[(&str, &str)], text: &str) {
        self.open_with(tag, attrs);
        self.write(Event::Text(markup_text(text)));
        self.close(tag);
    }

    /// The document as written, without a final newline.
    fn into_string(self) -> String {
        String::from_utf8(self.writer.into_inner()).expect("the writer was given UTF-8 only")
    }

    /// A date, format 102 (`YYYYMMDD`).
    fn date(&mut self, tag: &str, date: NaiveDate) {
        self.open(tag);
        self.leaf_with(
            "udt:DateTimeString",
            &[("format", "102")],
            &date.format("%Y%m%d").to_string(),
        );
        self.close(tag);
    }

    fn period(&mut self, start: NaiveDate, end: NaiveDate) {
        self.open("ram:BillingSpecifiedPeriod");
        self.date("ram:StartDateTime", start);
        self.date("ram:EndDateTime", end);
        self.close("ram:BillingSpecifiedPeriod");
    }

    /// A line's VAT (BT-151, BT-152): its category and rate; 0 for every
    /// category but `S` (BR-E-05, BR-AE-05, BR-IC-05, BR-G-05), no rate
    /// outside the scope of VAT (BR-O-05).
    fn line_vat(&mut self, category: &str, rate: Decimal) {
        let category = category.trim();
        self.open("ram:ApplicableTradeTax");
        self.leaf("ram:TypeCode", "VAT");
        self.leaf("ram:CategoryCode", category);
        if category != "O" {
            self.leaf("ram:RateApplicablePercent", &percent(rate));
        }
        self.close("ram:ApplicableTradeTax");
    }
}

// ---------------------------------------------------------------------------
// The PDF/A-3B

/// Turns the PDF Chromium printed into a PDF/A-3B Factur-X carrying `xml`
/// (from [`cii_xml`]) as `factur-x.xml`. Deterministic: dates come from the
/// issue date, the trailer `/ID` from a hash of the inputs. Refuses a
/// document whose totals would break EN 16931's sum rules (lines to
/// `total_ht`, VAT per category and rate rounded to the cent, `total_ttc`) or
/// the rules of its VAT categories (`O` alone, a buyer VAT number for `AE`
/// and `K`).
pub fn embed(pdf: &[u8], xml: &str, doc: &InvoiceDocument) -> Result<Vec<u8>, FacturxError> {
    check_totals(doc).map_err(|message| FacturxError::Totals {
        invoice: doc.invoice_number.clone(),
        message,
    })?;
    let mut pdf_doc =
        Document::load_mem(pdf).map_err(|e| FacturxError::Load(one_line(&e.to_string())))?;
    if pdf_doc.is_encrypted() || pdf_doc.trailer.has(b"Encrypt") {
        return Err(FacturxError::Encrypted);
    }
    let catalog_id = pdf_doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|e| FacturxError::Catalog(one_line(&e.to_string())))?;
    pdf_doc
        .get_dictionary(catalog_id)
        .map_err(|e| FacturxError::Catalog(one_line(&e.to_string())))?;

    let dates = Dates::of(doc.issue_date);
    // Associated files are PDF 1.7 (ISO 32000-1), which PDF/A-3 is based on.
    pdf_doc.version = "1.7".to_string();

    // The XML: embedded file stream, then its file specification.
    let mut file = Stream::new(
        dictionary! {
            "Type" => "EmbeddedFile",
            "Subtype" => Object::Name(b"text/xml".to_vec()),
            "Params" => dictionary! {
                "ModDate" => Object::string_literal(dates.pdf.as_str()),
                "Size" => xml.len() as i64,
            },
        },
        xml.as_bytes().to_vec(),
    );
    file.compress()
        .map_err(|e| FacturxError::Write(one_line(&e.to_string())))?;
    let file_id = pdf_doc.add_object(file);
    let filespec_id = pdf_doc.add_object(dictionary! {
        "Type" => "Filespec",
        "F" => Object::string_literal(XML_FILENAME),
        "UF" => Object::string_literal(XML_FILENAME),
        "EF" => dictionary! { "F" => file_id, "UF" => file_id },
        "Desc" => Object::string_literal("Factur-X XML invoice"),
        "AFRelationship" => "Data",
    });

    // The XMP packet replaces any metadata stream in place.
    let mut xmp = Stream::new(
        dictionary! { "Type" => "Metadata", "Subtype" => "XML" },
        xmp_packet(doc, &dates).into_bytes(),
    );
    xmp.allows_compression = false;
    let existing_metadata = pdf_doc
        .get_dictionary(catalog_id)
        .ok()
        .and_then(|catalog| catalog.get(b"Metadata").ok())
        .and_then(|m| m.as_reference().ok());
    let metadata_id = match existing_metadata {
        Some(id) => {
            pdf_doc.objects.insert(id, Object::Stream(xmp));
            id
        }
        None => pdf_doc.add_object(xmp),
    };

    let mut icc = Stream::new(
        dictionary! { "N" => 3, "Alternate" => "DeviceRGB" },
        SRGB_ICC.to_vec(),
    );
    icc.compress()
        .map_err(|e| FacturxError::Write(one_line(&e.to_string())))?;
    let icc_id = pdf_doc.add_object(icc);
    let output_intent = dictionary! {
        "Type" => "OutputIntent",
        "S" => "GTS_PDFA1",
        "OutputConditionIdentifier" => Object::string_literal("sRGB IEC61966-2.1"),
        "Info" => Object::string_literal("sRGB IEC61966-2.1"),
        "RegistryName" => Object::string_literal("http://www.color.org"),
        "DestOutputProfile" => icc_id,
    };

    let embedded_files = dictionary! {
        "Names" => vec![Object::string_literal(XML_FILENAME), filespec_id.into()],
    };
    set_embedded_files(&mut pdf_doc, catalog_id, embedded_files)?;

    let catalog = pdf_doc
        .get_dictionary_mut(catalog_id)
        .map_err(|e| FacturxError::Catalog(one_line(&e.to_string())))?;
    catalog.set("AF", vec![Object::Reference(filespec_id)]);
    catalog.set("Metadata", metadata_id);
    catalog.set("OutputIntents", vec![Object::Dictionary(output_intent)]);

    print_annotations(&mut pdf_doc);

    // The Info dictionary says what the XMP says (PDF/A-3 6.6.2.3.2).
    let info = dictionary! {
        "Title" => lopdf::text_string(&doc.invoice_number),
        "Author" => lopdf::text_string(&doc.integrator.name),
        "Creator" => lopdf::text_string(CREATOR),
        "Producer" => lopdf::text_string(PRODUCER),
        "CreationDate" => Object::string_literal(dates.pdf.as_str()),
        "ModDate" => Object::string_literal(dates.pdf.as_str()),
    };
    match pdf_doc.trailer.get(b"Info").and_then(Object::as_reference) {
        Ok(id) => {
            pdf_doc.objects.insert(id, Object::Dictionary(info));
        }
        Err(_) => {
            let id = pdf_doc.add_object(info);
            pdf_doc.trailer.set("Info", id);
        }
    }

    let file_id = document_id(pdf, xml, doc);
    pdf_doc.trailer.set(
        "ID",
        vec![
            Object::String(file_id.to_vec(), StringFormat::Hexadecimal),
            Object::String(file_id.to_vec(), StringFormat::Hexadecimal),
        ],
    );

    let mut out = Vec::with_capacity(pdf.len() + xml.len() + SRGB_ICC.len() + 8192);
    pdf_doc
        .save_to(&mut out)
        .map_err(|e| FacturxError::Write(one_line(&e.to_string())))?;
    Ok(out)
}

/// The catalog's `/Names /EmbeddedFiles`, replaced by ours (a printed page
/// has none; another one would lack what PDF/A-3 asks of it), the other name
/// trees kept.
fn set_embedded_files(
    pdf_doc: &mut Document,
    catalog_id: ObjectId,
    embedded_files: Dictionary,
) -> Result<(), FacturxError> {
    let names = pdf_doc
        .get_dictionary(catalog_id)
        .ok()
        .and_then(|catalog| catalog.get(b"Names").ok())
        .cloned();
    match names {
        Some(Object::Reference(id)) if pdf_doc.get_dictionary(id).is_ok() => {
            let names = pdf_doc
                .get_dictionary_mut(id)
                .map_err(|e| FacturxError::Catalog(one_line(&e.to_string())))?;
            names.set("EmbeddedFiles", embedded_files);
        }
        other => {
            let mut names = match other {
                Some(Object::Dictionary(names)) => names,
                _ => Dictionary::new(),
            };
            names.set("EmbeddedFiles", embedded_files);
            pdf_doc
                .get_dictionary_mut(catalog_id)
                .map_err(|e| FacturxError::Catalog(one_line(&e.to_string())))?
                .set("Names", names);
        }
    }
    Ok(())
}

/// PDF/A wants every annotation printable and visible (`/F` Print set,
/// Invisible, Hidden, NoView and ToggleNoView clear); Chromium's link
/// annotations have no `/F`.
fn print_annotations(pdf_doc: &mut Document) {
    const PRINT: i64 = 4;
    const NOT_ALLOWED: i64 = 1 | 2 | 32 | 256;
    let fix = |annot: &mut Dictionary| {
        let flags = annot.get(b"F").and_then(Object::as_i64).unwrap_or(0);
        annot.set("F", (flags | PRINT) & !NOT_ALLOWED);
    };
    let pages: Vec<ObjectId> = pdf_doc.get_pages().into_values().collect();
    let mut referenced = Vec::new();
    for page_id in pages {
        // `/Annots` is an array, or a reference to one.
        let annots_ref = pdf_doc
            .get_dictionary(page_id)
            .ok()
            .and_then(|page| page.get(b"Annots").ok())
            .and_then(|annots| annots.as_reference().ok());
        let annots = match annots_ref {
            Some(id) => pdf_doc.get_object_mut(id).ok(),
            None => pdf_doc
                .get_dictionary_mut(page_id)
                .ok()
                .and_then(|page| page.get_mut(b"Annots").ok()),
        };
        let Some(Object::Array(annots)) = annots else {
            continue;
        };
        for annot in annots.iter_mut() {
            match annot {
                Object::Reference(id) => referenced.push(*id),
                Object::Dictionary(dict) => fix(dict),
                _ => {}
            }
        }
    }
    for id in referenced {
        if let Ok(annot) = pdf_doc.get_dictionary_mut(id) {
            fix(annot);
        }
    }
}

/// The trailer `/ID`: the first 16 bytes of a SHA-256 of the inputs.
fn document_id(pdf: &[u8], xml: &str, doc: &InvoiceDocument) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(b"mvnobill factur-x\0");
    hasher.update((pdf.len() as u64).to_be_bytes());
    hasher.update(pdf);
    hasher.update((xml.len() as u64).to_be_bytes());
    hasher.update(xml.as_bytes());
    hasher.update(doc.invoice_number.as_bytes());
    hasher.update(doc.issue_date.to_string().as_bytes());
    let digest = hasher.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// The one date the PDF states (creation, modification, metadata, the
/// embedded file's): the issue date at midnight UTC, in both syntaxes.
struct Dates {
    /// `D:20261101000000+00'00'`
    pdf: String,
    /// `2026-11-01T00:00:00+00:00`
    xmp: String,
}

impl Dates {
    fn of(day: NaiveDate) -> Dates {
        Dates {
            pdf: format!("D:{}000000+00'00'", day.format("%Y%m%d")),
            xmp: format!("{}T00:00:00+00:00", day.format("%Y-%m-%d")),
        }
    }
}

/// The XMP packet: PDF/A-3B identification, Dublin Core, PDF and XMP basic
/// properties (matching the Info dictionary), the Factur-X properties and
/// the PDF/A extension schema that declares them (Factur-X 1.0 §6.2.2).
/// Written by the same writer as the CII XML, without a final newline.
fn xmp_packet(doc: &InvoiceDocument, dates: &Dates) -> String {
    const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
    const FX: &str = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#";
    let date = dates.xmp.as_str();
    let mut x = Xml::new();
    x.write(Event::PI(BytesPI::new(
        "xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"",
    )));
    x.open_with("x:xmpmeta", &[("xmlns:x", "adobe:ns:meta/")]);
    x.open_with("rdf:RDF", &[("xmlns:rdf", RDF)]);

    // Each schema in its own rdf:Description, its namespace declared there.
    let description = |x: &mut Xml, namespaces: &[(&str, &str)]| {
        let mut attrs = vec![("rdf:about", "")];
        attrs.extend_from_slice(namespaces);
        x.open_with("rdf:Description", &attrs);
    };
    description(
        &mut x,
        &[("xmlns:pdfaid", "http://www.aiim.org/pdfa/ns/id/")],
    );
    x.leaf("pdfaid:part", "3");
    x.leaf("pdfaid:conformance", "B");
    x.close("rdf:Description");

    description(&mut x, &[("xmlns:dc", "http://purl.org/dc/elements/1.1/")]);
    x.leaf("dc:format", "application/pdf");
    x.open("dc:title");
    x.open("rdf:Alt");
    x.leaf_with("rdf:li", &[("xml:lang", "x-default")], &doc.invoice_number);
    x.close("rdf:Alt");
    x.close("dc:title");
    x.open("dc:creator");
    x.open("rdf:Seq");
    x.leaf("rdf:li", &doc.integrator.name);
    x.close("rdf:Seq");
    x.close("dc:creator");
    x.close("rdf:Description");

    description(&mut x, &[("xmlns:pdf", "http://ns.adobe.com/pdf/1.3/")]);
    x.leaf("pdf:Producer", PRODUCER);
    x.close("rdf:Description");

    description(&mut x, &[("xmlns:xmp", "http://ns.adobe.com/xap/1.0/")]);
    x.leaf("xmp:CreatorTool", CREATOR);
    x.leaf("xmp:CreateDate", date);
    x.leaf("xmp:ModifyDate", date);
    x.leaf("xmp:MetadataDate", date);
    x.close("rdf:Description");

    description(&mut x, &[("xmlns:fx", FX)]);
    x.leaf("fx:DocumentType", "INVOICE");
    x.leaf("fx:DocumentFileName", XML_FILENAME);
    x.leaf("fx:Version", "1.0");
    x.leaf("fx:ConformanceLevel", "EN 16931");
    x.close("rdf:Description");

    description(
        &mut x,
        &[
            (
                "xmlns:pdfaExtension",
                "http://www.aiim.org/pdfa/ns/extension/",
            ),
            ("xmlns:pdfaSchema", "http://www.aiim.org/pdfa/ns/schema#"),
            (
                "xmlns:pdfaProperty",
                "http://www.aiim.org/pdfa/ns/property#",
            ),
        ],
    );
    x.open("pdfaExtension:schemas");
    x.open("rdf:Bag");
    x.open_with("rdf:li", &[("rdf:parseType", "Resource")]);
    x.leaf("pdfaSchema:schema", "Factur-X PDFA Extension Schema");
    x.leaf("pdfaSchema:namespaceURI", FX);
    x.leaf("pdfaSchema:prefix", "fx");
    x.open("pdfaSchema:property");
    x.open("rdf:Seq");
    for (name, description) in [
        ("DocumentFileName", "name of the embedded XML invoice file"),
        ("DocumentType", "INVOICE"),
        ("Version", "The actual version of the Factur-X XML schema"),
        (
            "ConformanceLevel",
            "The conformance level of the embedded Factur-X data",
        ),
    ] {
        x.open_with("rdf:li", &[("rdf:parseType", "Resource")]);
        x.leaf("pdfaProperty:name", name);
        x.leaf("pdfaProperty:valueType", "Text");
        x.leaf("pdfaProperty:category", "external");
        x.leaf("pdfaProperty:description", description);
        x.close("rdf:li");
    }
    x.close("rdf:Seq");
    x.close("pdfaSchema:property");
    x.close("rdf:li");
    x.close("rdf:Bag");
    x.close("pdfaExtension:schemas");
    x.close("rdf:Description");

    x.close("rdf:RDF");
    x.close("x:xmpmeta");
    x.write(Event::PI(BytesPI::new("xpacket end=\"w\"")));
    x.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::document::{InvoiceLine, Payment, VatAmount};
    use crate::reference::integrator::Integrator;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn line(kind: &str, msisdn: &str, label: &str, amount: &str) -> InvoiceLine {
        InvoiceLine {
            kind: kind.to_string(),
            msisdn: msisdn.to_string(),
            label: label.to_string(),
            code: "PLAN-20G".to_string(),
            event_type: String::new(),
            zone: String::new(),
            quantity: dec("31"),
            unit_price: None,
            amount_ht: dec(amount),
            period_start: Some(day(2026, 10, 1)),
            period_end: Some(day(2026, 10, 31)),
            period: String::new(),
            vat_category: "S".to_string(),
            vat_rate: dec("20.00"),
            vat_exemption: String::new(),
        }
    }

    /// A B2B invoice of two lines whose customer name tries to break the XML.
    fn fixture() -> InvoiceDocument {
        let integrator: Integrator =
            toml::from_str(include_str!("../../data/integrator.toml")).unwrap();
        InvoiceDocument {
            invoice_number: "EXM-2026-10-000042".to_string(),
            month: "2026-10".to_string(),
            issue_date: day(2026, 11, 2),
            due_date: day(2026, 11, 17),
            period_start: day(2026, 10, 1),
            period_end: day(2026, 10, 31),
            integrator,
            customer: Customer {
                customer_id: "C000042".to_string(),
                kind: "B2B".to_string(),
                name: "<script>alert(1)</script> & \"Fils\"".to_string(),
                address1: "3 rue de la Paix".to_string(),
                address2: String::new(),
                postcode: "75002".to_string(),
                city: "Paris".to_string(),
                country: "FR".to_string(),
                email: "compta@fils.example".to_string(),
                vat_number: "FR40123456789".to_string(),
                siret: "12345678900017".to_string(),
            },
            lines: vec![
                line("SUBSCRIPTION", "33612345678", "Forfait Pro 20 Go", "29.99"),
                line(
                    "USAGE",
                    "33612345678",
                    "Appels vers l'international",
                    "5.01",
                ),
            ],
            subscription_ht: dec("29.99"),
            options_ht: Decimal::ZERO,
            usage_ht: dec("5.01"),
            equipment_ht: Decimal::ZERO,
            charges_ht: Decimal::ZERO,
            regularisation_ht: Decimal::ZERO,
            total_ht: dec("35.00"),
            vat: vec![VatAmount::standard(dec("20"), dec("35.00"), dec("7.00"))],
            total_vat: dec("7.00"),
            total_ttc: dec("42.00"),
            balance_brought_forward: Decimal::ZERO,
            amount_due: dec("42.00"),
            payment: Payment {
                method: "SEPA_DD".to_string(),
                creditor_id: "FR72ZZZ123456".to_string(),
                mandate_rum: "RUM-C000042-01".to_string(),
                mandate_date: Some(day(2025, 3, 14)),
                iban_masked: "**** **** **** **** **** **** *189".to_string(),
                debit_date: day(2026, 11, 17),
                bank_iban: String::new(),
                bank_bic: String::new(),
            },
            annex: Vec::new(),
            commitments: Default::default(),
        }
    }

    /// The document parsed whole by quick-xml's reader: first the
    /// declaration `<?xml version="1.0" encoding="UTF-8"?>`, then
    /// [`root_element`]. Returns the root element's name.
    fn well_formed(xml: &str) -> Result<String, String> {
        let mut reader = quick_xml::Reader::from_str(xml);
        match reader.read_event() {
            Ok(Event::Decl(decl)) => {
                let version = decl.version().map_err(|e| e.to_string())?;
                let encoding = decl.encoding().transpose().map_err(|e| e.to_string())?;
                if version.as_ref() != b"1.0" || encoding.as_deref() != Some(&b"UTF-8"[..]) {
                    return Err(format!("declaration {decl:?}"));
                }
            }
            other => return Err(format!("no XML declaration first: {other:?}")),
        }
        root_element(reader)
    }

    /// Reads the rest of a document to its end: every end tag matches its
    /// start tag (the reader checks end names), attributes are well formed
    /// with known references, text holds only known references and none
    /// stands outside the single root element, nothing is left open.
    /// Processing instructions and comments are skipped. Returns the root
    /// element's name.
    fn root_element(mut reader: quick_xml::Reader<&[u8]>) -> Result<String, String> {
        let mut open: Vec<String> = Vec::new();
        let mut root = None;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
            let (start, empty) = match event {
                Event::Start(start) => (start, false),
                Event::Empty(start) => (start, true),
                Event::End(_) => {
                    open.pop();
                    continue;
                }
                Event::Text(text) => {
                    let text = text.decode().map_err(|e| e.to_string())?;
                    if open.is_empty() && !text.trim().is_empty() {
                        return Err(format!("text outside the root: {text:?}"));
                    }
                    continue;
                }
                Event::GeneralRef(reference) => {
                    let name = reference.decode().map_err(|e| e.to_string())?;
                    let known = if reference.is_char_ref() {
                        reference.resolve_char_ref().is_ok_and(|c| c.is_some())
                    } else {
                        quick_xml::escape::resolve_predefined_entity(&name).is_some()
                    };
                    if !known {
                        return Err(format!("unknown reference &{name};"));
                    }
                    if open.is_empty() {
                        return Err(format!("&{name}; outside the root"));
                    }
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
            for attribute in start.attributes() {
                let attribute = attribute.map_err(|e| format!("<{name}>: {e}"))?;
                attribute
                    .unescape_value()
                    .map_err(|e| format!("<{name}>: {e}"))?;
            }
            if open.is_empty() {
                if let Some(first) = &root {
                    return Err(format!("two root elements, <{first}> and <{name}>"));
                }
                root = Some(name.clone());
            }
            if !empty {
                open.push(name);
            }
        }
        if !open.is_empty() {
            return Err(format!("unclosed elements {open:?}"));
        }
        root.ok_or_else(|| "no root element".to_string())
    }

    #[test]
    fn the_xml_is_well_formed_and_escapes_every_text() {
        let xml = cii_xml(&fixture());
        assert_eq!(well_formed(&xml).unwrap(), "rsm:CrossIndustryInvoice");
        assert!(xml.contains(
            "<ram:Name>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Fils&quot;</ram:Name>"
        ));
        assert!(!xml.contains("<script>"));
        assert!(xml.contains("<ram:Name>Appels vers l&#39;international (33612345678)</ram:Name>"));
        // The checker itself catches what escaping prevents.
        let declared = |body: &str| format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{body}");
        for broken in [
            "<a>&</a>",
            "<a>&nbsp;</a>",
            "<a><b></a></b>",
            "<a><b></b>",
            "<a></a></b>",
            "<a></a><b/>",
            "<a></a>text",
            "<a b=\"1\" b=\"2\"/>",
            "<a b=\"&x;\"/>",
            "<a b=1/>",
        ] {
            assert!(well_formed(&declared(broken)).is_err(), "{broken} passes");
        }
        assert!(well_formed("<a/>").is_err(), "no declaration");
        assert_eq!(
            well_formed(&declared("<a b=\"&#39;\">&#x41;&amp;</a>")).unwrap(),
            "a"
        );
    }

    #[test]
    fn charges_termination_fees_and_regularisations_are_lines_of_their_own() {
        let mut doc = fixture();
        let mut regularisation = line("REGULARISATION", "33612345678", "Appels", "2.50");
        regularisation.period = "2026-09".to_string();
        regularisation.event_type = "VOICE".to_string();
        regularisation.period_start = Some(day(2026, 9, 3));
        regularisation.period_end = Some(day(2026, 9, 28));
        let mut gesture = line("CHARGE", "", "Geste commercial", "-4.50");
        gesture.period_start = Some(day(2026, 10, 12));
        gesture.period_end = None;
        let fee = line(
            "TERMINATION_FEE",
            "33612345678",
            "Forfait Pro 20 Go",
            "12.00",
        );
        doc.lines.extend([regularisation, gesture, fee]);
        doc.charges_ht = dec("7.50");
        doc.regularisation_ht = dec("2.50");
        doc.total_ht = dec("45.00");
        doc.vat[0].base_ht = dec("45.00");
        doc.vat[0].amount = dec("9.00");
        doc.total_vat = dec("9.00");
        doc.total_ttc = dec("54.00");
        check_totals(&doc).unwrap();
        let xml = cii_xml(&doc);
        assert_eq!(well_formed(&xml).unwrap(), "rsm:CrossIndustryInvoice");
        for expected in [
            "<ram:Name>Régularisation 09/2026 — Appels (33612345678)</ram:Name>",
            "<ram:Name>Geste commercial</ram:Name>",
            "<ram:Name>Frais de résiliation anticipée — Forfait Pro 20 Go (33612345678)</ram:Name>",
            "<ram:LineTotalAmount>-4.50</ram:LineTotalAmount>",
            "<ram:BilledQuantity unitCode=\"C62\">-1</ram:BilledQuantity>",
            "<ram:LineTotalAmount>45.00</ram:LineTotalAmount>",
        ] {
            assert!(xml.contains(expected), "{expected} missing:\n{xml}");
        }
    }

    #[test]
    fn the_xml_states_the_en16931_header_parties_and_totals() {
        let xml = cii_xml(&fixture());
        for expected in [
            "<ram:ID>urn:cen.eu:en16931:2017</ram:ID>",
            "<ram:ID>S1</ram:ID>",
            "<ram:ID>EXM-2026-10-000042</ram:ID>",
            "<ram:TypeCode>380</ram:TypeCode>",
            "<udt:DateTimeString format=\"102\">20261102</udt:DateTimeString>",
            // Seller: SIREN of SIRET 12345678200010, VAT, parsed address.
            "<ram:ID schemeID=\"0002\">123456782</ram:ID>",
            "<ram:ID schemeID=\"VA\">FR11123456782</ram:ID>",
            "<ram:PostcodeCode>69003</ram:PostcodeCode>",
            "<ram:LineOne>12 avenue des Lilas</ram:LineOne>",
            "<ram:CityName>Lyon</ram:CityName>",
            // Buyer.
            "<ram:ID schemeID=\"0002\">123456789</ram:ID>",
            "<ram:ID schemeID=\"VA\">FR40123456789</ram:ID>",
            "<ram:PostcodeCode>75002</ram:PostcodeCode>",
            // Direct debit: ICS, mandate, no debtor account.
            "<ram:CreditorReferenceID>FR72ZZZ123456</ram:CreditorReferenceID>",
            "<ram:TypeCode>59</ram:TypeCode>",
            "<ram:DirectDebitMandateID>RUM-C000042-01</ram:DirectDebitMandateID>",
            "<ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>",
            // Period and due date.
            "<udt:DateTimeString format=\"102\">20261001</udt:DateTimeString>",
            "<udt:DateTimeString format=\"102\">20261031</udt:DateTimeString>",
            "<udt:DateTimeString format=\"102\">20261117</udt:DateTimeString>",
            // VAT breakdown and totals.
            "<ram:CalculatedAmount>7.00</ram:CalculatedAmount>",
            "<ram:BasisAmount>35.00</ram:BasisAmount>",
            "<ram:RateApplicablePercent>20</ram:RateApplicablePercent>",
            "<ram:LineTotalAmount>35.00</ram:LineTotalAmount>",
            "<ram:TaxBasisTotalAmount>35.00</ram:TaxBasisTotalAmount>",
            "<ram:TaxTotalAmount currencyID=\"EUR\">7.00</ram:TaxTotalAmount>",
            "<ram:GrandTotalAmount>42.00</ram:GrandTotalAmount>",
            "<ram:DuePayableAmount>42.00</ram:DuePayableAmount>",
            "<ram:SubjectCode>PMT</ram:SubjectCode>",
        ] {
            assert!(xml.contains(expected), "missing {expected}");
        }
        assert!(!xml.contains("IBANID"), "no debtor IBAN, masked or not");
        assert!(!xml.contains("*189"));
    }

    #[test]
    fn a_credit_note_is_type_381_refers_to_its_invoice_and_asks_no_payment() {
        let mut note = fixture();
        note.invoice_number = "EXM-AV-2026-000003".to_string();
        let xml = credit_note_xml(
            &note,
            CreditedInvoice {
                number: "EXM-2026-000042",
                issue_date: day(2026, 11, 1),
            },
        );
        assert_eq!(well_formed(&xml).unwrap(), "rsm:CrossIndustryInvoice");
        let referenced = "<ram:InvoiceReferencedDocument>\n        \
            <ram:IssuerAssignedID>EXM-2026-000042</ram:IssuerAssignedID>\n        \
            <ram:FormattedIssueDateTime>\n          \
            <qdt:DateTimeString format=\"102\">20261101</qdt:DateTimeString>";
        for expected in [
            "<ram:ID>EXM-AV-2026-000003</ram:ID>",
            "<ram:TypeCode>381</ram:TypeCode>",
            referenced,
            "<ram:Description>Avoir de 42.00 EUR TTC rembours",
            "<ram:GrandTotalAmount>42.00</ram:GrandTotalAmount>",
        ] {
            assert!(xml.contains(expected), "missing {expected}:\n{xml}");
        }
        // The buyer pays nothing: no direct debit, no due date.
        for absent in [
            "<ram:TypeCode>380</ram:TypeCode>",
            "SpecifiedTradeSettlementPaymentMeans",
            "CreditorReferenceID",
            "DirectDebitMandateID",
            "DueDateDateTime",
        ] {
            assert!(!xml.contains(absent), "{absent} in a credit note");
        }
        // The invoice's own XML has no reference to a preceding invoice.
        assert!(!cii_xml(&fixture()).contains("InvoiceReferencedDocument"));
    }

    #[test]
    fn each_line_is_one_unit_at_its_amount() {
        let xml = cii_xml(&fixture());
        assert_eq!(
            xml.matches("<ram:IncludedSupplyChainTradeLineItem>")
                .count(),
            2
        );
        assert!(xml.contains("<ram:LineID>1</ram:LineID>"));
        assert!(xml.contains("<ram:LineID>2</ram:LineID>"));
        assert_eq!(
            xml.matches("<ram:BilledQuantity unitCode=\"C62\">1</ram:BilledQuantity>")
                .count(),
            2
        );
        for amount in ["29.99", "5.01"] {
            assert!(xml.contains(&format!("<ram:ChargeAmount>{amount}</ram:ChargeAmount>")));
            assert!(xml.contains(&format!(
                "<ram:LineTotalAmount>{amount}</ram:LineTotalAmount>"
            )));
        }
        // One VAT category per line and one in the breakdown.
        assert_eq!(
            xml.matches("<ram:CategoryCode>S</ram:CategoryCode>")
                .count(),
            3
        );
    }

    #[test]
    fn a_transfer_names_the_integrators_account_and_amounts_keep_two_decimals() {
        let mut doc = fixture();
        doc.payment.method = "TRANSFER".to_string();
        doc.payment.bank_iban = "FR76 3000 6000 0112 3456 7890 189".to_string();
        doc.payment.bank_bic = "AGRIFRPPXXX".to_string();
        doc.lines[1].amount_ht = Decimal::ZERO;
        doc.lines
            .push(line("OPTION", "", "Remise fidélité", "-5.01"));
        let xml = cii_xml(&doc);
        assert!(xml.contains("<ram:TypeCode>58</ram:TypeCode>"));
        assert!(xml.contains("<ram:IBANID>FR7630006000011234567890189</ram:IBANID>"));
        assert!(xml.contains("<ram:BICID>AGRIFRPPXXX</ram:BICID>"));
        assert!(!xml.contains("CreditorReferenceID"));
        assert!(!xml.contains("DirectDebitMandateID"));
        assert!(xml.contains("<ram:LineTotalAmount>0.00</ram:LineTotalAmount>"));
        // A credit is quantity -1 at a positive price (BR-27).
        assert!(xml.contains("<ram:BilledQuantity unitCode=\"C62\">-1</ram:BilledQuantity>"));
        assert!(xml.contains("<ram:LineTotalAmount>-5.01</ram:LineTotalAmount>"));
        assert!(xml.contains("<ram:Name>Remise fidélité</ram:Name>"));
        doc.lines
            .push(line("EQUIPMENT", "33612345678", "Smartphone", "99.00"));
        assert!(cii_xml(&doc).contains("<ram:ID>M1</ram:ID>"));
        assert_eq!(amount(dec("5")), "5.00");
        assert_eq!(amount(dec("1234.5")), "1234.50");
        assert_eq!(amount(dec("-0.00")), "0.00");
        assert_eq!(percent(dec("5.50")), "5.5");
    }

    #[test]
    fn the_seller_address_splits_postcode_and_city() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let address = lines(&["12 avenue des Lilas", "69003 Lyon"]);
        let parsed = SellerAddress::parse(&address);
        assert_eq!((parsed.postcode, parsed.city), ("69003", "Lyon"));
        assert_eq!(parsed.lines, ["12 avenue des Lilas"]);
        let address = lines(&["Bât. B", "1 rue A", "CS 100", "BP 7", "Lyon Cedex"]);
        let parsed = SellerAddress::parse(&address);
        assert_eq!((parsed.postcode, parsed.city), ("", ""));
        assert_eq!(
            parsed.lines,
            ["Bât. B", "1 rue A", "CS 100, BP 7, Lyon Cedex"]
        );
        let address = lines(&["1 rue A", "123456 Nowhere"]);
        assert_eq!(SellerAddress::parse(&address).postcode, "");
    }

    /// A one-page PDF as a printer would make it, with a link annotation
    /// that has no `/F` (as Chromium's have none).
    fn tiny_pdf() -> Vec<u8> {
        let mut pdf = Document::with_version("1.4");
        let pages_id = pdf.new_object_id();
        let content_id = pdf.add_object(Stream::new(
            dictionary! {},
            b"0 0 1 rg 56 700 200 50 re f".to_vec(),
        ));
        let link_id = pdf.add_object(dictionary! {
            "Type" => "Annot",
            "Subtype" => "Link",
            "Rect" => vec![56.into(), 700.into(), 256.into(), 750.into()],
            "A" => dictionary! { "S" => "URI", "URI" => Object::string_literal("https://example.com/") },
        });
        let page_id = pdf.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            "Contents" => content_id,
            "Annots" => vec![Object::Reference(link_id)],
        });
        pdf.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => vec![Object::Reference(page_id)],
                "Count" => 1,
            }),
        );
        let catalog_id = pdf.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        let info_id = pdf.add_object(dictionary! {
            "Producer" => Object::string_literal("Skia/PDF m120"),
            "CreationDate" => Object::string_literal("D:20261102101010+00'00'"),
        });
        pdf.trailer.set("Root", catalog_id);
        pdf.trailer.set("Info", info_id);
        let mut bytes = Vec::new();
        pdf.save_to(&mut bytes).unwrap();
        bytes
    }

    fn deref<'a>(pdf: &'a Document, object: &'a Object) -> &'a Object {
        pdf.dereference(object).unwrap().1
    }

    #[test]
    fn the_embedded_pdf_is_a_factur_x_pdf_a3() {
        let doc = fixture();
        let xml = cii_xml(&doc);
        let out = embed(&tiny_pdf(), &xml, &doc).unwrap();
        assert!(out.starts_with(b"%PDF-1.7\n%"));

        let pdf = Document::load_mem(&out).unwrap();
        let catalog = pdf.catalog().unwrap();

        // The XML, by the name tree and by /AF, byte for byte.
        let names = deref(&pdf, catalog.get(b"Names").unwrap())
            .as_dict()
            .unwrap();
        let embedded = deref(&pdf, names.get(b"EmbeddedFiles").unwrap())
            .as_dict()
            .unwrap();
        let tree = embedded.get(b"Names").unwrap().as_array().unwrap();
        assert_eq!(tree[0].as_str().unwrap(), b"factur-x.xml");
        let filespec_ref = tree[1].as_reference().unwrap();
        let af = catalog.get(b"AF").unwrap().as_array().unwrap();
        assert_eq!(af, &vec![Object::Reference(filespec_ref)]);
        let filespec = pdf.get_dictionary(filespec_ref).unwrap();
        assert_eq!(
            filespec.get(b"AFRelationship").unwrap().as_name().unwrap(),
            b"Data"
        );
        assert_eq!(
            filespec.get(b"UF").unwrap().as_str().unwrap(),
            b"factur-x.xml"
        );
        let ef = filespec.get(b"EF").unwrap().as_dict().unwrap();
        let file = deref(&pdf, ef.get(b"F").unwrap()).as_stream().unwrap();
        assert_eq!(
            file.dict.get(b"Subtype").unwrap().as_name().unwrap(),
            b"text/xml"
        );
        let params = file.dict.get(b"Params").unwrap().as_dict().unwrap();
        assert_eq!(
            params.get(b"Size").unwrap().as_i64().unwrap(),
            xml.len() as i64
        );
        assert_eq!(
            params.get(b"ModDate").unwrap().as_str().unwrap(),
            b"D:20261102000000+00'00'"
        );
        assert_eq!(file.decompressed_content().unwrap(), xml.as_bytes());
        // The name as written: `/` escaped.
        assert!(out.windows(11).any(|w| w == b"/text#2Fxml"));

        // XMP: PDF/A-3B, Factur-X EN 16931, the title.
        let metadata = deref(&pdf, catalog.get(b"Metadata").unwrap())
            .as_stream()
            .unwrap();
        assert_eq!(
            metadata.dict.get(b"Subtype").unwrap().as_name().unwrap(),
            b"XML"
        );
        assert!(metadata.dict.get(b"Filter").is_err(), "XMP stays readable");
        let xmp = String::from_utf8(metadata.content.clone()).unwrap();
        assert_eq!(
            root_element(quick_xml::Reader::from_str(&xmp)).unwrap(),
            "x:xmpmeta"
        );
        for expected in [
            "<pdfaid:part>3</pdfaid:part>",
            "<pdfaid:conformance>B</pdfaid:conformance>",
            "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>",
            "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>",
            "<pdfaSchema:prefix>fx</pdfaSchema:prefix>",
            "<rdf:li xml:lang=\"x-default\">EXM-2026-10-000042</rdf:li>",
            "<xmp:CreateDate>2026-11-02T00:00:00+00:00</xmp:CreateDate>",
        ] {
            assert!(xmp.contains(expected), "XMP misses {expected}");
        }

        // Output intent with an RGB profile.
        let intents = catalog.get(b"OutputIntents").unwrap().as_array().unwrap();
        let intent = deref(&pdf, &intents[0]).as_dict().unwrap();
        assert_eq!(intent.get(b"S").unwrap().as_name().unwrap(), b"GTS_PDFA1");
        let icc = deref(&pdf, intent.get(b"DestOutputProfile").unwrap())
            .as_stream()
            .unwrap();
        assert_eq!(icc.dict.get(b"N").unwrap().as_i64().unwrap(), 3);
        assert_eq!(icc.decompressed_content().unwrap(), SRGB_ICC);

        // Info matches the XMP; the printer's producer and date are gone.
        let info = deref(&pdf, pdf.trailer.get(b"Info").unwrap())
            .as_dict()
            .unwrap();
        assert_eq!(
            info.get(b"Title").unwrap().as_str().unwrap(),
            b"EXM-2026-10-000042"
        );
        assert_eq!(
            info.get(b"Producer").unwrap().as_str().unwrap(),
            PRODUCER.as_bytes()
        );
        assert_eq!(
            info.get(b"CreationDate").unwrap().as_str().unwrap(),
            b"D:20261102000000+00'00'"
        );
        let id = pdf.trailer.get(b"ID").unwrap().as_array().unwrap();
        assert_eq!(id.len(), 2);
        assert_eq!(id[0].as_str().unwrap().len(), 16);

        // The link is printable now.
        let page_id = *pdf.get_pages().get(&1).unwrap();
        let annots = pdf.get_dictionary(page_id).unwrap().get(b"Annots").unwrap();
        let link = deref(&pdf, &annots.as_array().unwrap()[0])
            .as_dict()
            .unwrap();
        assert_eq!(link.get(b"F").unwrap().as_i64().unwrap(), 4);
    }

    #[test]
    fn embedding_is_deterministic() {
        let doc = fixture();
        let xml = cii_xml(&doc);
        let pdf = tiny_pdf();
        let first = embed(&pdf, &xml, &doc).unwrap();
        let second = embed(&pdf, &xml, &doc).unwrap();
        assert!(first == second, "two runs differ");
        // Another invoice gets another /ID.
        let mut other = fixture();
        other.invoice_number = "EXM-2026-10-000043".to_string();
        let third = embed(&pdf, &cii_xml(&other), &other).unwrap();
        assert!(first != third);
    }

    #[test]
    fn embedding_refuses_what_is_not_a_pdf_or_does_not_add_up() {
        let doc = fixture();
        let xml = cii_xml(&doc);
        let err = embed(b"not a pdf", &xml, &doc).unwrap_err();
        assert!(matches!(err, FacturxError::Load(_)), "{err}");

        let mut wrong = fixture();
        wrong.total_ttc = dec("42.01");
        let err = embed(&tiny_pdf(), &xml, &wrong).unwrap_err().to_string();
        assert!(err.contains("EXM-2026-10-000042"), "{err}");
        assert!(!err.contains('\n'));

        let mut two_rates = fixture();
        two_rates.vat.push(VatAmount::standard(
            dec("5.5"),
            Decimal::ZERO,
            Decimal::ZERO,
        ));
        let err = embed(&tiny_pdf(), &xml, &two_rates)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not its lines'"), "{err}");

        // Outside the scope of VAT, alone.
        let mut mixed = fixture();
        mixed.lines[1].vat_category = "O".to_string();
        mixed.lines[1].vat_rate = Decimal::ZERO;
        mixed.vat = vec![
            VatAmount::standard(dec("20"), dec("29.99"), dec("6.00")),
            VatAmount {
                category: "O".to_string(),
                rate: Decimal::ZERO,
                base_ht: dec("5.01"),
                amount: Decimal::ZERO,
                exemption: "Hors champ d'application de la TVA".to_string(),
            },
        ];
        mixed.total_vat = dec("6.00");
        mixed.total_ttc = dec("41.00");
        let err = embed(&tiny_pdf(), &xml, &mixed).unwrap_err().to_string();
        assert!(err.contains("mixed"), "{err}");

        // Reverse charge names the buyer's VAT number.
        let mut reverse = fixture();
        reverse.customer.vat_number = String::new();
        for line in &mut reverse.lines {
            line.vat_category = "AE".to_string();
            line.vat_rate = Decimal::ZERO;
        }
        reverse.vat = vec![VatAmount {
            category: "AE".to_string(),
            rate: Decimal::ZERO,
            base_ht: dec("35.00"),
            amount: Decimal::ZERO,
            exemption: "Autoliquidation".to_string(),
        }];
        reverse.total_vat = Decimal::ZERO;
        reverse.total_ttc = dec("35.00");
        let err = embed(&tiny_pdf(), &xml, &reverse).unwrap_err().to_string();
        assert!(err.contains("VAT number"), "{err}");
    }
}
