//! Consumption alerts (`[alerts] thresholds`, off by default): after each
//! `rate` of a month, a mail to the customer when the delivery just rated
//! took one of its allowance pools (rating.md §4) across a threshold, in
//! percent of the pool's allowance. `rate` calls [`notify`] with the
//! `consumption` dataset as it was before the run and as the run wrote it
//! (`stages::pools`).
//!
//! - **Crossing.** A pool crosses threshold `t` when `consumed_before × 100
//!   < t × allowance ≤ consumed_after × 100`: exactly at the threshold
//!   counts, and a pool absent before (the delivery brought its first
//!   event, or the month's first rate) was at 0. An unlimited pool, or one
//!   whose allowance is 0 (BLOC1H's MMS), has no percentage and crosses
//!   nothing.
//! - **Once per pool and threshold, ever.** The ledger's `alert_notices`
//!   holds one row per (month, msisdn, pool_start, allowance_group,
//!   threshold). A threshold recorded is never mailed again, and neither is
//!   one below the highest recorded of its pool (a pool whose consumption
//!   went down with a re-rate and rises again is not told the lower
//!   threshold after the higher).
//! - **Several at once.** When one rate takes a pool across several
//!   thresholds (a big delivery, the first rate of a month), only the
//!   highest is mailed; the lower ones are recorded `skipped`, with no
//!   recipient, as `dunning` records the levels a catch-up skipped.
//! - **The mails.** From the integrator's billing address through `[mail]`
//!   (the same SMTP session rules as the invoice mails,
//!   `documents::mail::Outbox`), to the customer's `email` of
//!   `customers.csv`, worded by `templates/alert_subject.txt`, `alert.txt`
//!   and `alert.html` (the integrator's own in `[templates] dir`). `[alerts]`
//!   without `[mail]` is a configuration error (settings.rs).
//! - **What is recorded when.** The crossings of a run are recorded first,
//!   in one transaction: the mailed threshold as `pending`, the lower ones
//!   `skipped`. Each pending alert of the month is then mailed and settled:
//!   `sent` (recipient, Message-ID), `refused` (the relay refused the
//!   recipient or the message, or the address is not one: the reason, not
//!   tried again) or `no_address` (none in customers.csv). When the relay
//!   cannot be reached, or a template or `customers.csv` does not load,
//!   `notify` fails in one line and the alerts stay `pending`: the next
//!   rate of the month sends them, with the figures of that rate.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use rusqlite::{params, Connection};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::month::Month;
use crate::documents::mail::{self, Letter, MailError, Outbox, Posted};
use crate::documents::mail::{contacts, Contact, CustomerInfo};
use crate::documents::templates::{MailTemplates, TemplateError};
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::reference::{Reference, ReferenceError};
use crate::stages::pools::{self, Pool, PoolKey, PoolsError};
use crate::stages::Context;

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Pools(#[from] PoolsError),
    #[error("alerts: ledger table alert_notices: {0}")]
    Ledger(#[from] rusqlite::Error),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Integrator(#[from] IntegratorError),
    #[error("alerts: {0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("alerts: [alerts] thresholds are set and [mail] is not: add a [mail] section (docs/MAIL.md)")]
    NoMail,
}

/// How a threshold of a pool is recorded (`alert_notices.status`).
pub mod status {
    /// To mail (this run, or a run whose relay could not be reached).
    pub const PENDING: &str = "pending";
    pub const SENT: &str = "sent";
    /// Crossed with a higher threshold in the same run: never mailed.
    pub const SKIPPED: &str = "skipped";
    /// The relay refused the recipient or the message; not tried again.
    pub const REFUSED: &str = "refused";
    /// The customer has no e-mail address in customers.csv.
    pub const NO_ADDRESS: &str = "no_address";
}

// ---- the rule ---------------------------------------------------------------

/// The thresholds (percent, ascending) a pool of `allowance` billed units
/// crosses when its consumption goes from `before` to `after`:
/// `before × 100 < t × allowance ≤ after × 100`. None without a positive
/// allowance.
pub fn crossed(thresholds: &[u32], before: i64, after: i64, allowance: i64) -> Vec<u32> {
    if allowance <= 0 {
        return Vec::new();
    }
    let (before, after, allowance) = (
        i128::from(before) * 100,
        i128::from(after) * 100,
        i128::from(allowance),
    );
    thresholds
        .iter()
        .copied()
        .filter(|&t| {
            let level = i128::from(t) * allowance;
            before < level && level <= after
        })
        .collect()
}

/// A pool's alert decided by a run: the threshold mailed and the lower
/// ones crossed with it, recorded as skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub key: PoolKey,
    pub customer_id: String,
    pub plan_code: String,
    pub allowance: i64,
    pub consumed: i64,
    pub threshold: u32,
    pub skipped: Vec<u32>,
}

/// The crossings of a run, by pool: each pool of `after` with a finite
/// allowance whose consumption since `before` (what each pool had
/// consumed, by key) crossed a threshold above the highest `recorded` for
/// it.
pub fn crossings(
    thresholds: &[u32],
    before: &HashMap<PoolKey, i64>,
    after: &[Pool],
    recorded: &HashMap<PoolKey, u32>,
) -> Vec<Crossing> {
    let mut out: Vec<Crossing> = after
        .iter()
        .filter_map(|pool| {
            let allowance = pool.finite_allowance()?;
            let key = pool.key();
            let was = before.get(&key).copied().unwrap_or(0);
            let highest = recorded.get(&key).copied().unwrap_or(0);
            let mut crossed: Vec<u32> = crossed(thresholds, was, pool.consumed, allowance)
                .into_iter()
                .filter(|&t| t > highest)
                .collect();
            let threshold = crossed.pop()?;
            Some(Crossing {
                key,
                customer_id: pool.customer_id.clone(),
                plan_code: pool.plan_code.clone(),
                allowance,
                consumed: pool.consumed,
                threshold,
                skipped: crossed,
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

// ---- the ledger ---------------------------------------------------------------

fn key_of(msisdn: String, pool_start: String, group: String) -> rusqlite::Result<PoolKey> {
    let pool_start = NaiveDate::parse_from_str(&pool_start, "%Y-%m-%d").map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(PoolKey {
        msisdn,
        pool_start,
        allowance_group: group,
    })
}

/// The highest threshold recorded for each pool of `month`, whatever its
/// status.
pub fn recorded(connection: &Connection, month: &str) -> rusqlite::Result<HashMap<PoolKey, u32>> {
    let mut statement = connection.prepare(
        "SELECT msisdn, pool_start, allowance_group, MAX(threshold) FROM alert_notices
         WHERE month = ?1 GROUP BY msisdn, pool_start, allowance_group",
    )?;
    let rows = statement.query_map([month], |r| {
        Ok((key_of(r.get(0)?, r.get(1)?, r.get(2)?)?, r.get(3)?))
    })?;
    rows.collect()
}

/// Records a run's crossings in one transaction: each mailed threshold as
/// pending, the lower ones as skipped.
pub fn record(
    connection: &Connection,
    month: &str,
    crossings: &[Crossing],
) -> rusqlite::Result<()> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let transaction = connection.unchecked_transaction()?;
    {
        let mut insert = transaction.prepare(
            "INSERT OR IGNORE INTO alert_notices (month, msisdn, pool_start, allowance_group,
                 threshold, customer_id, plan_code, allowance, consumed, status, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for crossing in crossings {
            let levels = crossing
                .skipped
                .iter()
                .map(|&t| (t, status::SKIPPED))
                .chain([(crossing.threshold, status::PENDING)]);
            for (threshold, state) in levels {
                insert.execute(params![
                    month,
                    crossing.key.msisdn,
                    crossing.key.pool_start.to_string(),
                    crossing.key.allowance_group,
                    threshold,
                    crossing.customer_id,
                    crossing.plan_code,
                    crossing.allowance,
                    crossing.consumed,
                    state,
                    now
                ])?;
            }
        }
    }
    transaction.commit()
}

/// The alerts of `month` still to mail, by pool.
pub fn pending(connection: &Connection, month: &str) -> rusqlite::Result<Vec<(PoolKey, u32)>> {
    let mut statement = connection.prepare(
        "SELECT msisdn, pool_start, allowance_group, threshold FROM alert_notices
         WHERE month = ?1 AND status = ?2 ORDER BY msisdn, pool_start, allowance_group",
    )?;
    let rows = statement.query_map(params![month, status::PENDING], |r| {
        Ok((key_of(r.get(0)?, r.get(1)?, r.get(2)?)?, r.get(3)?))
    })?;
    rows.collect()
}

/// What became of a pending alert.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Sent {
        recipient: String,
        message_id: String,
    },
    Refused {
        recipient: String,
        reason: String,
    },
    NoAddress,
}

/// Records what became of the pending alert of `key` at `threshold`.
fn settle(
    connection: &Connection,
    month: &str,
    key: &PoolKey,
    threshold: u32,
    outcome: &Outcome,
) -> rusqlite::Result<()> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (state, recipient, message_id, reason) = match outcome {
        Outcome::Sent {
            recipient,
            message_id,
        } => (status::SENT, Some(recipient), Some(message_id), None),
        Outcome::Refused { recipient, reason } => {
            (status::REFUSED, Some(recipient), None, Some(reason))
        }
        Outcome::NoAddress => (status::NO_ADDRESS, None, None, None),
    };
    connection.execute(
        "UPDATE alert_notices SET status = ?1, recipient = ?2, message_id = ?3, reason = ?4,
             sent_at = ?5
         WHERE month = ?6 AND msisdn = ?7 AND pool_start = ?8 AND allowance_group = ?9
             AND threshold = ?10",
        params![
            state,
            recipient,
            message_id,
            reason,
            now,
            month,
            key.msisdn,
            key.pool_start.to_string(),
            key.allowance_group,
            threshold
        ],
    )?;
    Ok(())
}

// ---- the report -------------------------------------------------------------

/// The alerts of one threshold in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThresholdReport {
    pub threshold: u32,
    /// Mailed (the relay accepted them).
    pub sent: u64,
    /// Crossed with a higher threshold of the same pool: recorded, not mailed.
    pub skipped: u64,
    pub refused: u64,
    pub no_address: u64,
}

/// An alert the relay refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedAlert {
    pub msisdn: String,
    pub allowance_group: String,
    pub threshold: u32,
    pub recipient: String,
    pub reason: String,
}

/// What `notify` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertsReport {
    pub month: String,
    /// `[alerts] thresholds`.
    pub thresholds: Vec<u32>,
    /// Pools that crossed a threshold with this run.
    pub pools_crossed: u64,
    /// Per threshold, ascending.
    pub by_threshold: Vec<ThresholdReport>,
    pub sent: u64,
    pub skipped: u64,
    /// Of those sent, alerts recorded by an earlier run whose relay could
    /// not be reached.
    pub retried: u64,
    pub refused: Vec<RefusedAlert>,
    /// Lines whose customer has no e-mail address (`msisdn (customer)`).
    pub no_address: Vec<String>,
    /// Pending alerts whose pool is no longer in the month's consumption:
    /// kept pending.
    pub waiting: u64,
    /// `host:port` of the relay, and the SMTP sessions opened.
    pub relay: String,
    pub connections: u64,
    /// Why this run could not send its alerts (they stay pending and go
    /// with the next rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl AlertsReport {
    /// The report of a run whose alerts could not go: `rate` has rated the
    /// month, and says why.
    pub fn failed(month: Month, error: &AlertsError) -> AlertsReport {
        AlertsReport {
            month: month.to_string(),
            failed: Some(crate::core::text::one_line(&error.to_string())),
            ..AlertsReport::default()
        }
    }

    fn threshold(&mut self, threshold: u32) -> &mut ThresholdReport {
        let at = match self
            .by_threshold
            .iter()
            .position(|r| r.threshold == threshold)
        {
            Some(at) => at,
            None => {
                self.by_threshold.push(ThresholdReport {
                    threshold,
                    ..ThresholdReport::default()
                });
                self.by_threshold.sort_by_key(|r| r.threshold);
                self.by_threshold
                    .iter()
                    .position(|r| r.threshold == threshold)
                    .unwrap_or_default()
            }
        };
        &mut self.by_threshold[at]
    }
}

impl std::fmt::Display for AlertsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(reason) = &self.failed {
            return write!(
                f,
                "alerts {}: not sent yet, pending for the next rate: {reason}",
                self.month
            );
        }
        let per = |count: fn(&ThresholdReport) -> u64| -> String {
            let parts: Vec<String> = self
                .by_threshold
                .iter()
                .filter(|r| count(r) > 0)
                .map(|r| format!("{} %: {}", r.threshold, count(r)))
                .collect();
            match parts.is_empty() {
                true => String::new(),
                false => format!(" ({})", parts.join(", ")),
            }
        };
        let thresholds: Vec<String> = self.thresholds.iter().map(|t| format!("{t} %")).collect();
        write!(
            f,
            "alerts {} at {}: {} pools crossed a threshold; {} sent{}, {} skipped{}",
            self.month,
            thresholds.join(", "),
            self.pools_crossed,
            self.sent,
            per(|r| r.sent),
            self.skipped,
            per(|r| r.skipped),
        )?;
        if self.retried > 0 {
            write!(f, ", {} of an earlier rate", self.retried)?;
        }
        write!(f, ", {} refused", self.refused.len())?;
        for (i, refused) in self.refused.iter().take(3).enumerate() {
            let lead = if i == 0 { " (" } else { "; " };
            write!(
                f,
                "{lead}{} {} {} % <{}>: {}",
                refused.msisdn,
                refused.allowance_group,
                refused.threshold,
                refused.recipient,
                refused.reason
            )?;
        }
        if self.refused.len() > 3 {
            write!(f, "; and {} more", self.refused.len() - 3)?;
        }
        if !self.refused.is_empty() {
            write!(f, ")")?;
        }
        if !self.no_address.is_empty() {
            write!(
                f,
                ", {} without address ({})",
                self.no_address.len(),
                self.no_address.join(", ")
            )?;
        }
        if self.waiting > 0 {
            write!(f, ", {} waiting for their pool", self.waiting)?;
        }
        write!(f, " via {}", self.relay)
    }
}

// ---- the mail ---------------------------------------------------------------

/// What the alert templates receive (docs/MAIL.md "Consumption alerts").
#[derive(Serialize)]
struct AlertContext<'a> {
    alert: AlertInfo,
    customer: CustomerInfo<'a>,
    integrator: &'a Integrator,
    brand: &'a str,
}

#[derive(Serialize)]
struct AlertInfo {
    /// The threshold crossed, in percent.
    threshold: u32,
    msisdn: String,
    /// `YYYY-MM`.
    month: String,
    group: String,
    /// `Données en France`.
    group_label: String,
    plan_code: String,
    /// In human units (`100 Go`, `2 h`, `100 SMS`).
    allowance: String,
    consumed: String,
    remaining: String,
    /// The whole percentage consumed, rounded down.
    percent: i64,
    /// Consumed at least the whole allowance.
    exhausted: bool,
    /// The pool's overage so far, HT.
    overage_amount: Decimal,
    /// When the rate ran, Paris time (`16/10/2026 à 14:08`).
    as_of: String,
    /// The pool's last event, Paris time.
    last_event: Option<String>,
    last_delivery: Option<String>,
}

/// An alert's subject, text and HTML.
fn letter(
    templates: &MailTemplates,
    integrator: &Integrator,
    month: Month,
    pool: &Pool,
    threshold: u32,
    contact: &Contact,
) -> Result<Letter, TemplateError> {
    let group = pool.allowance_group.as_str();
    let allowance = pool.allowance.unwrap_or_default();
    let remaining = pool
        .remaining
        .unwrap_or_else(|| (allowance - pool.consumed).max(0));
    let context = AlertContext {
        alert: AlertInfo {
            threshold,
            msisdn: pool.msisdn.clone(),
            month: month.to_string(),
            group: group.to_string(),
            group_label: pools::group_label(group),
            plan_code: pool.plan_code.clone(),
            allowance: pools::quantity_text(allowance, group),
            consumed: pools::quantity_text(pool.consumed, group),
            remaining: pools::quantity_text(remaining, group),
            percent: pool.percent_used().unwrap_or_default(),
            exhausted: pool.consumed >= allowance,
            overage_amount: pool.overage_amount,
            as_of: pools::paris_text(pool.as_of),
            last_event: pool.last_event_time.map(pools::paris_text),
            last_delivery: pool.last_delivery.clone(),
        },
        customer: CustomerInfo {
            customer_id: &pool.customer_id,
            name: &contact.name,
        },
        integrator,
        brand: mail::brand(integrator),
    };
    Ok(Letter {
        key: format!(
            "alert-{month}-{}-{}-{threshold}",
            pool.msisdn, pool.allowance_group
        ),
        customer_name: contact.name.clone(),
        to: contact.email.clone().unwrap_or_default(),
        subject: templates.render(MailTemplates::ALERT_SUBJECT, &context)?,
        text: templates.render(MailTemplates::ALERT_TEXT, &context)?,
        html: templates.render(MailTemplates::ALERT_HTML, &context)?,
    })
}

// ---- the stage ----------------------------------------------------------------

/// Mails the alerts of a rate of `month` (docs/MAIL.md "Consumption
/// alerts"): `before` is the consumption dataset as it was before the run
/// (empty at the month's first rate), `after` as the run wrote it. None
/// when `[alerts]` is off.
pub async fn notify(
    stage: &Context,
    month: Month,
    before: &[RecordBatch],
    after: &[RecordBatch],
) -> Result<Option<AlertsReport>, AlertsError> {
    let settings = &stage.settings;
    let thresholds = &settings.alert_thresholds;
    if thresholds.is_empty() {
        return Ok(None);
    }
    let mail_settings = settings.mail.as_ref().ok_or(AlertsError::NoMail)?;
    // A pool without a percentage crosses nothing: those are not read whole.
    let before = pools::consumed(before)?;
    let after = pools::pools(&pools::with_allowance(after)?)?;
    let connection = stage.ledger.connection();
    let month_text = month.to_string();
    let crossings = crossings(
        thresholds,
        &before,
        &after,
        &recorded(connection, &month_text)?,
    );
    let mut report = AlertsReport {
        month: month_text.clone(),
        thresholds: thresholds.clone(),
        pools_crossed: crossings.len() as u64,
        by_threshold: thresholds
            .iter()
            .map(|&threshold| ThresholdReport {
                threshold,
                ..ThresholdReport::default()
            })
            .collect(),
        relay: mail_settings.relay(),
        ..AlertsReport::default()
    };
    let earlier = pending(connection, &month_text)?;
    if crossings.is_empty() && earlier.is_empty() {
        return Ok(Some(report));
    }
    // Recorded first: what stops the mails below (a broken template or
    // table, the relay unreachable) leaves them pending for the next rate.
    record(connection, &month_text, &crossings)?;
    let templates = MailTemplates::alerts(settings.templates_dir.as_deref())?;
    let integrator = Integrator::load(&settings.integrator_path)?;
    let contacts = contacts(&Reference::load(&settings.reference_dir)?);
    for crossing in &crossings {
        for &threshold in &crossing.skipped {
            report.threshold(threshold).skipped += 1;
            report.skipped += 1;
        }
    }
    let this_run: HashMap<&PoolKey, u32> =
        crossings.iter().map(|c| (&c.key, c.threshold)).collect();
    let retried: HashSet<(PoolKey, u32)> = earlier
        .into_iter()
        .filter(|(key, threshold)| this_run.get(key) != Some(threshold))
        .collect();
    let pools: BTreeMap<PoolKey, &Pool> = after.iter().map(|p| (p.key(), p)).collect();
    let mut outbox = Outbox::new(mail_settings, &integrator)?;
    let result = (|| -> Result<(), AlertsError> {
        for (key, threshold) in pending(connection, &month_text)? {
            let Some(pool) = pools.get(&key) else {
                report.waiting += 1;
                continue;
            };
            let earlier = retried.contains(&(key.clone(), threshold));
            let contact = contacts.get(&pool.customer_id).cloned().unwrap_or_default();
            let outcome = match &contact.email {
                None => Outcome::NoAddress,
                Some(_) => {
                    let letter = letter(&templates, &integrator, month, pool, threshold, &contact)?;
                    match outbox.post(&letter)? {
                        Posted::Sent {
                            recipient,
                            message_id,
                        } => Outcome::Sent {
                            recipient,
                            message_id,
                        },
                        Posted::Refused { recipient, reason } => {
                            Outcome::Refused { recipient, reason }
                        }
                    }
                }
            };
            settle(connection, &month_text, &key, threshold, &outcome)?;
            let counts = report.threshold(threshold);
            match outcome {
                Outcome::Sent { .. } => {
                    counts.sent += 1;
                    report.sent += 1;
                    if earlier {
                        report.retried += 1;
                    }
                }
                Outcome::Refused { recipient, reason } => {
                    counts.refused += 1;
                    tracing::warn!(
                        "alerts: the {threshold} % alert of {} {} to {recipient} was refused: {reason}",
                        pool.msisdn,
                        pool.allowance_group
                    );
                    report.refused.push(RefusedAlert {
                        msisdn: pool.msisdn.clone(),
                        allowance_group: pool.allowance_group.clone(),
                        threshold,
                        recipient,
                        reason,
                    });
                }
                Outcome::NoAddress => {
                    counts.no_address += 1;
                    report
                        .no_address
                        .push(format!("{} ({})", pool.msisdn, pool.customer_id));
                }
            }
        }
        Ok(())
    })();
    report.connections = outbox.close();
    result?;
    tracing::info!(
        month = %month_text,
        sent = report.sent,
        skipped = report.skipped,
        "alerts: mailed"
    );
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::stages::pools::tests::pool;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// A pool of `msisdn` in `group`, `consumed` of `allowance` (None:
    /// unlimited).
    fn line(
        msisdn: &str,
        customer: &str,
        group: &str,
        allowance: Option<i64>,
        consumed: i64,
    ) -> Pool {
        Pool {
            msisdn: msisdn.into(),
            customer_id: customer.into(),
            as_of: at("2026-10-16T12:08:00Z"),
            last_event_time: Some(at("2026-10-16T09:02:00Z")),
            ..pool(group, allowance, consumed)
        }
    }

    #[test]
    fn a_threshold_is_crossed_when_the_delivery_reaches_it() {
        let t = [80, 100];
        // 2 h of voice (7,200 s): 80 % is 5,760 s.
        assert_eq!(crossed(&t, 0, 5759, 7200), Vec::<u32>::new());
        assert_eq!(crossed(&t, 0, 5760, 7200), vec![80], "exactly at 80 %");
        assert_eq!(
            crossed(&t, 5760, 5800, 7200),
            Vec::<u32>::new(),
            "already there"
        );
        assert_eq!(crossed(&t, 5759, 7199, 7200), vec![80]);
        assert_eq!(crossed(&t, 5760, 7200, 7200), vec![100], "exactly used up");
        assert_eq!(crossed(&t, 100, 9000, 7200), vec![80, 100], "both at once");
        assert_eq!(
            crossed(&t, 9000, 9999, 7200),
            Vec::<u32>::new(),
            "past both"
        );
        // Allowance 0 (BLOC1H's MMS): no percentage, nothing crossed.
        assert_eq!(crossed(&t, 0, 5, 0), Vec::<u32>::new());
        // Consumption that went down (a re-rate) crosses nothing.
        assert_eq!(crossed(&t, 7200, 100, 7200), Vec::<u32>::new());
        // A percentage of a large pool does not overflow: 100 Go in KB.
        assert_eq!(crossed(&[1, 99], 0, i64::MAX / 2, 104_857_600), vec![1, 99]);
    }

    #[test]
    fn one_crossing_per_pool_the_highest_mailed_the_lower_skipped() {
        let t = [50, 80, 100];
        let before = vec![
            line("33600000001", "C1", "VOICE_FR", Some(7200), 3000),
            line("33600000002", "C1", "DATA_FR", Some(1_048_576), 900_000),
            line("33600000003", "C2", "SMS_FR", None, 10),
            line("33600000004", "C2", "MMS_FR", Some(0), 0),
        ];
        let after = vec![
            // 41.7 % → 125 %: 50 and 80 skipped, 100 mailed.
            line("33600000001", "C1", "VOICE_FR", Some(7200), 9000),
            // 85.8 % → 90 %: nothing new.
            line("33600000002", "C1", "DATA_FR", Some(1_048_576), 943_718),
            // Unlimited: never.
            line("33600000003", "C2", "SMS_FR", None, 100_000),
            // Allowance 0: never.
            line("33600000004", "C2", "MMS_FR", Some(0), 7),
            // New this delivery (absent before: at 0): exactly 80 % of 100 SMS.
            line("33600000005", "C2", "SMS_FR", Some(100), 80),
            // New, below every threshold.
            line("33600000006", "C2", "SMS_FR", Some(100), 49),
        ];
        let before = consumed(&before);
        let found = crossings(&t, &before, &after, &HashMap::new());
        let summary: Vec<(&str, u32, Vec<u32>)> = found
            .iter()
            .map(|c| (c.key.msisdn.as_str(), c.threshold, c.skipped.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("33600000001", 100, vec![50, 80]),
                ("33600000005", 80, vec![50]),
            ]
        );
        assert_eq!(found[0].allowance, 7200);
        assert_eq!(found[0].consumed, 9000);
        // What the ledger holds is not crossed again, nor anything below
        // the highest it holds.
        let recorded: HashMap<PoolKey, u32> = [(after[0].key(), 100), (after[4].key(), 80)].into();
        assert!(crossings(&t, &before, &after, &recorded).is_empty());
        let recorded: HashMap<PoolKey, u32> = [(after[0].key(), 50)].into();
        assert_eq!(
            crossings(&t, &before, &after[..1], &recorded)[0].skipped,
            vec![80]
        );
    }

    fn consumed(pools: &[Pool]) -> HashMap<PoolKey, i64> {
        pools.iter().map(|p| (p.key(), p.consumed)).collect()
    }

    fn templates() -> MailTemplates {
        MailTemplates::alerts(None).expect("the default alert templates")
    }

    fn integrator() -> Integrator {
        toml::from_str(include_str!("../../tests/fixtures/samples/integrator.toml"))
            .expect("the samples' integrator.toml")
    }

    #[test]
    fn the_default_alert_word_for_word() {
        let month: Month = "2026-10".parse().unwrap();
        let mut data = line(
            "33632260020",
            "C00001",
            "DATA_FR",
            Some(104_857_600),
            83_886_080,
        );
        data.overage_amount = Decimal::ZERO;
        let contact = Contact {
            name: "Élodie Müller".into(),
            email: Some("client3@example.org".into()),
        };
        let mail = letter(&templates(), &integrator(), month, &data, 80, &contact).unwrap();
        assert_eq!(mail.to, "client3@example.org");
        assert_eq!(
            mail.subject.trim(),
            "Données en France : 80 % de 100 Go utilisés – ligne 06 32 26 00 20 – ExempleMobile"
        );
        assert_eq!(
            mail.text,
            "Bonjour Élodie Müller,\n\
             \n\
             Sur votre ligne 06 32 26 00 20, vous avez utilisé 80 % de ce que votre forfait comprend en octobre 2026 :\n\
             \n\
             Données en France : 80 % de 100 Go utilisés\n\
             - consommé : 80 Go (80 %)\n\
             - restant : 20 Go\n\
             \n\
             Au-delà de ce que votre forfait comprend, ces communications seront facturées hors forfait, aux tarifs de votre offre.\n\
             \n\
             Consommation relevée le 16/10/2026 à 14:08, d'après les communications reçues de notre opérateur jusqu'au 16/10/2026 à 11:02 ; les plus récentes peuvent ne pas encore y figurer.\n\
             \n\
             Une question ? Notre service client vous répond par téléphone au 09 70 00 00 00 (appel non surtaxé) ou par e-mail à support@exemple-mobile.fr.\n\
             \n\
             Cordialement,\n\
             Le service facturation ExempleMobile\n\
             \n\
             -- \n\
             Telco Exemple SAS – SAS au capital de 10 000 € – 12 avenue des Lilas, 69003 Lyon – SIRET 12345678200010\n"
        );
        assert!(mail
            .html
            .contains("<p><strong>Données en France : 80 % de 100 Go utilisés</strong></p>"));
        assert!(mail.html.contains("<li>restant : 20 Go</li>"));

        // Used up, with an overage so far: 2 h 08 min 20 s of 1 h.
        let mut voice = line("33632260020", "C00001", "VOICE_FR", Some(3600), 7700);
        voice.overage_amount = "4.166667".parse().unwrap();
        let mail = letter(&templates(), &integrator(), month, &voice, 100, &contact).unwrap();
        assert!(mail
            .subject
            .starts_with("Appels en France : 100 % de 1 h utilisés"));
        for part in [
            "- consommé : 2 h 8 min 20 s (213 %)\n",
            "- restant : 0 min\n",
            "- hors forfait à ce jour : 4,17\u{a0}€ HT\n",
            "Ce que votre forfait comprend est épuisé : jusqu'à la fin du mois",
        ] {
            assert!(mail.text.contains(part), "{part}\n{}", mail.text);
        }
        // The customer's name is text in the HTML.
        let tricky = Contact {
            name: "<b>O'Brien</b>".into(),
            email: contact.email.clone(),
        };
        let mail = letter(&templates(), &integrator(), month, &voice, 100, &tricky).unwrap();
        assert!(mail
            .html
            .contains("Bonjour &lt;b&gt;O&#39;Brien&lt;/b&gt;,"));
    }

    /// An SMTP relay on 127.0.0.1 that accepts every message but those to
    /// `refuse`, and keeps (recipient, message) of each.
    struct Relay {
        port: u16,
        received: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl Relay {
        fn start(refuse: &'static str) -> Relay {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let received = Arc::new(Mutex::new(Vec::new()));
            let kept = received.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut say = |text: &str| stream.write_all(text.as_bytes());
                    let _ = say("220 relay ESMTP\r\n");
                    let mut to = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        let command = line.trim_end().to_string();
                        line.clear();
                        let upper = command.to_ascii_uppercase();
                        let answer = if upper.starts_with("RCPT TO:") {
                            to = command[8..]
                                .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                                .to_string();
                            if to == refuse {
                                "550 5.1.1 no such user\r\n"
                            } else {
                                "250 OK\r\n"
                            }
                        } else if upper == "DATA" {
                            let _ = say("354 go on\r\n");
                            let mut message = String::new();
                            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                                if line == ".\r\n" {
                                    break;
                                }
                                message.push_str(&line);
                                line.clear();
                            }
                            line.clear();
                            kept.lock().unwrap().push((to.clone(), message));
                            "250 2.0.0 queued\r\n"
                        } else if upper == "QUIT" {
                            let _ = say("221 bye\r\n");
                            break;
                        } else {
                            "250 relay\r\n"
                        };
                        if say(answer).is_err() {
                            break;
                        }
                    }
                }
            });
            Relay { port, received }
        }

        fn recipients(&self) -> Vec<String> {
            self.received
                .lock()
                .unwrap()
                .iter()
                .map(|(to, _)| to.clone())
                .collect()
        }
    }

    /// A context on the samples' tables (C00002 without an e-mail address,
    /// C00003's refused by the relay), a scratch lake and ledger, `[mail]`
    /// on `port` and alerts at 80 and 100 %.
    fn context(dir: &Path, port: u16) -> Context {
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples");
        let reference = dir.join("reference");
        std::fs::create_dir_all(&reference).unwrap();
        for entry in std::fs::read_dir(samples.join("reference")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), reference.join(entry.file_name())).unwrap();
        }
        let customers = std::fs::read_to_string(reference.join("customers.csv")).unwrap();
        std::fs::write(
            reference.join("customers.csv"),
            customers.replace(";client2@example.org;", ";;"),
        )
        .unwrap();
        let config = dir.join("mvnobill.toml");
        std::fs::write(
            &config,
            format!(
                "[reference]\ndir = \"reference\"\nintegrator = \"{}\"\n[lake]\nurl = \"file://{}/lake\"\n\
                 [mail]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_s = 5\n\
                 [alerts]\nthresholds = [80, 100]\n",
                samples.join("integrator.toml").display(),
                dir.display()
            ),
        )
        .unwrap();
        Context::open(&config).unwrap()
    }

    fn batch(pools: &[Pool]) -> Vec<RecordBatch> {
        vec![pools::to_batch(pools).unwrap()]
    }

    fn statuses(ctx: &Context) -> Vec<(String, String, u32, String, Option<String>)> {
        ctx.ledger
            .connection()
            .prepare(
                "SELECT msisdn, allowance_group, threshold, status, recipient FROM alert_notices
                 ORDER BY msisdn, allowance_group, threshold",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn notify_mails_each_crossing_once_and_records_it() {
        let relay = Relay::start("client3@example.org");
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), relay.port);
        let month: Month = "2026-10".parse().unwrap();
        // The month's first rate: C00001's voice at 92 %, its data at 129 %
        // (80 skipped), C00002's SMS at 80 % (no address), C00003's data
        // at 100 % (80 skipped, 100 refused by the relay), C00004's
        // unlimited data.
        let first = vec![
            line("33632260020", "C00001", "VOICE_FR", Some(3600), 3315),
            line(
                "33632260020",
                "C00001",
                "DATA_FR",
                Some(1_048_576),
                1_355_776,
            ),
            line("33632260222", "C00002", "SMS_FR", Some(100), 80),
            line(
                "33632260285",
                "C00003",
                "DATA_FR",
                Some(5_242_880),
                5_242_880,
            ),
            line("33632260339", "C00004", "DATA_FR", None, 9_999_999),
        ];
        let report = notify(&ctx, month, &[], &batch(&first))
            .await
            .unwrap()
            .expect("alerts are on");
        assert_eq!(relay.recipients(), vec!["client1@example.org"; 2]);
        assert_eq!(
            (report.pools_crossed, report.sent, report.skipped),
            (4, 2, 2)
        );
        assert_eq!(
            report.by_threshold,
            vec![
                ThresholdReport {
                    threshold: 80,
                    sent: 1,
                    skipped: 2,
                    refused: 0,
                    no_address: 1
                },
                ThresholdReport {
                    threshold: 100,
                    sent: 1,
                    skipped: 0,
                    refused: 1,
                    no_address: 0
                },
            ]
        );
        assert_eq!(report.no_address, vec!["33632260222 (C00002)"]);
        assert_eq!(report.refused[0].recipient, "client3@example.org");
        assert!(report.refused[0].reason.contains("550"), "{report}");
        let text = report.to_string();
        assert!(
            text.starts_with(
                "alerts 2026-10 at 80 %, 100 %: 4 pools crossed a threshold; 2 sent (80 %: 1, 100 %: 1), 2 skipped (80 %: 2), 1 refused (33632260285 DATA_FR 100 % <client3@example.org>: 550"
            ) && text.contains(", 1 without address (33632260222 (C00002)) via 127.0.0.1:"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
        let sent = |to: &str| {
            statuses(&ctx)
                .into_iter()
                .filter(|s| s.4.as_deref() == Some(to))
                .count()
        };
        assert_eq!(
            statuses(&ctx),
            vec![
                (
                    "33632260020".into(),
                    "DATA_FR".into(),
                    80,
                    "skipped".into(),
                    None
                ),
                (
                    "33632260020".into(),
                    "DATA_FR".into(),
                    100,
                    "sent".into(),
                    Some("client1@example.org".into())
                ),
                (
                    "33632260020".into(),
                    "VOICE_FR".into(),
                    80,
                    "sent".into(),
                    Some("client1@example.org".into())
                ),
                (
                    "33632260222".into(),
                    "SMS_FR".into(),
                    80,
                    "no_address".into(),
                    None
                ),
                (
                    "33632260285".into(),
                    "DATA_FR".into(),
                    80,
                    "skipped".into(),
                    None
                ),
                (
                    "33632260285".into(),
                    "DATA_FR".into(),
                    100,
                    "refused".into(),
                    Some("client3@example.org".into())
                ),
            ]
        );

        // The same rate again: nothing crosses, nothing goes.
        let again = notify(&ctx, month, &batch(&first), &batch(&first))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.pools_crossed, again.sent), (0, 0));
        // Even compared with nothing: the ledger remembers.
        let again = notify(&ctx, month, &[], &batch(&first))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.pools_crossed, again.sent), (0, 0));
        assert_eq!(relay.recipients().len(), 2);

        // The next delivery: C00001's voice reaches 100 %, its SMS pool is
        // new and at 100 % at once (80 skipped).
        let mut second = first.clone();
        second[0].consumed = 3600;
        second.push(line("33632260020", "C00001", "SMS_FR", Some(100), 120));
        let report = notify(&ctx, month, &batch(&first), &batch(&second))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (report.pools_crossed, report.sent, report.skipped),
            (2, 2, 1)
        );
        assert_eq!(sent("client1@example.org"), 4);
        assert_eq!(relay.recipients().len(), 4);
        // The mail says the pool (the SMS pool's, pending pools in order).
        let received = relay.received.lock().unwrap();
        let (_, message) = &received[2];
        for part in [
            "From: ExempleMobile <facturation@exemple-mobile.fr>",
            " <client1@example.org>\r\n",
            "Subject: SMS en France : 100 % de 100 SMS",
            "SMS en France : 100 % de 100 SMS utilis=C3=A9s",
            "- consomm=C3=A9 : 120 SMS (120 %)",
        ] {
            assert!(message.contains(part), "{part}\n{message}");
        }
    }

    #[tokio::test]
    async fn alerts_wait_for_an_unreachable_relay_and_go_with_the_next_rate() {
        // A port nothing listens on.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), port);
        let month: Month = "2026-10".parse().unwrap();
        let first = vec![line("33632260020", "C00001", "VOICE_FR", Some(3600), 3000)];
        let error = notify(&ctx, month, &[], &batch(&first)).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}")) && !text.contains('\n'),
            "{text}"
        );
        assert_eq!(statuses(&ctx)[0].3, "pending");

        // The relay is back for the next rate, which crosses nothing new.
        let relay = Relay::start("nobody@example.org");
        let config = dir.path().join("mvnobill.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace(&format!("port = {port}"), &format!("port = {}", relay.port)),
        )
        .unwrap();
        let ctx = Context::open(&config).unwrap();
        let mut second = first.clone();
        second[0].consumed = 3100;
        let report = notify(&ctx, month, &batch(&first), &batch(&second))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (report.pools_crossed, report.sent, report.retried),
            (0, 1, 1)
        );
        assert_eq!(relay.recipients(), vec!["client1@example.org"]);
        assert_eq!(statuses(&ctx)[0].3, "sent");
        // A pending alert whose pool left the month's consumption waits.
        record(
            ctx.ledger.connection(),
            "2026-10",
            &crossings(
                &[80],
                &HashMap::new(),
                &[line("33699999999", "C00001", "SMS_FR", Some(10), 9)],
                &HashMap::new(),
            ),
        )
        .unwrap();
        let report = notify(&ctx, month, &batch(&second), &batch(&second))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((report.sent, report.waiting), (0, 1));
    }

    #[tokio::test]
    async fn a_broken_template_stops_the_mails_in_one_line_and_they_wait() {
        let relay = Relay::start("nobody@example.org");
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("alert.txt"), "Bonjour {{ customer.nom }},\n").unwrap();
        let ctx = context(dir.path(), relay.port);
        let config = dir.path().join("mvnobill.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}[templates]\ndir = \"own\"\n")).unwrap();
        drop(ctx);
        let ctx = Context::open(&config).unwrap();
        let month: Month = "2026-10".parse().unwrap();
        let after = batch(&[line("33632260020", "C00001", "SMS_FR", Some(100), 85)]);
        let error = notify(&ctx, month, &[], &after)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("alerts: template alert.txt line 1:") && !error.contains('\n'),
            "{error}"
        );
        assert_eq!(statuses(&ctx)[0].3, "pending");
        assert!(relay.recipients().is_empty());
        std::fs::remove_file(own.join("alert.txt")).unwrap();
        let report = notify(&ctx, month, &after, &after).await.unwrap().unwrap();
        assert_eq!((report.sent, report.retried), (1, 1));
        assert_eq!(statuses(&ctx)[0].3, "sent");
    }

    #[tokio::test]
    async fn off_without_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mvnobill.toml");
        std::fs::write(
            &config,
            format!(
                "[reference]\ndir = \"ref\"\nintegrator = \"ref/i.toml\"\n[lake]\nurl = \"file://{}/lake\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let ctx = Context::open(&config).unwrap();
        let after = batch(&[line("33632260020", "C00001", "VOICE_FR", Some(3600), 3600)]);
        let month: Month = "2026-10".parse().unwrap();
        assert!(notify(&ctx, month, &[], &after).await.unwrap().is_none());
    }
}
