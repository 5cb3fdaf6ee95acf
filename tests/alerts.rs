//! Consumption to date (issue 25, items 3 and 4) with the real binary:
//!
//! - `usage MSISDN` reads a `consumption` dataset this test writes itself,
//!   row by row with Arrow (the columns `rate` writes: docs/OPERATIONS.md
//!   "A line's consumption"), on a local lake and on an S3 one;
//! - `[alerts]`: the samples month delivered in two parts and rated after
//!   each, every crossing of 80 % and 100 % mailed once to the SMTP sink of
//!   the mail tests, with figures computed from the sample files alone.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::common::{copy_dir, fixtures, Workspace};
use crate::mail::Sink;

// ---- a consumption dataset written by hand --------------------------------------

/// One row of `consumption`: line, customer, plan, pool start (YYYY-MM-DD),
/// group, allowance (None: unlimited), consumed, overage quantity, overage
/// amount (text, 6 decimals), events, last event (RFC 3339).
struct Row {
    msisdn: &'static str,
    customer: &'static str,
    plan: &'static str,
    start: &'static str,
    group: &'static str,
    allowance: Option<i64>,
    consumed: i64,
    overage_qty: i64,
    overage: &'static str,
    events: i64,
    last_event: Option<&'static str>,
}

fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_micros()
}

/// The rows as `consumption/month=…/part-0.parquet` holds them, each with
/// `as_of` and `last_delivery`.
fn parquet(rows: &[Row], as_of: &str, delivery: &str) -> Vec<u8> {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("msisdn", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("plan_code", DataType::Utf8, false),
        Field::new("pool_start", DataType::Date32, false),
        Field::new("allowance_group", DataType::Utf8, false),
        Field::new("unlimited", DataType::Boolean, false),
        Field::new("allowance", DataType::Int64, true),
        Field::new("consumed", DataType::Int64, false),
        Field::new("remaining", DataType::Int64, true),
        Field::new("overage_qty", DataType::Int64, false),
        Field::new("overage_amount", DataType::Decimal128(18, 6), false),
        Field::new("events", DataType::Int64, false),
        Field::new("last_event_time", utc(), true),
        Field::new("last_cdr_id", DataType::Utf8, true),
        Field::new("as_of", utc(), false),
        Field::new("last_delivery", DataType::Utf8, true),
    ]));
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let text = |f: fn(&Row) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        text(|r| r.msisdn),
        text(|r| r.customer),
        text(|r| r.plan),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| {
            let day = chrono::NaiveDate::parse_from_str(r.start, "%Y-%m-%d").unwrap();
            (day - epoch).num_days() as i32
        }))),
        text(|r| r.group),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.allowance.is_none())),
        )),
        Arc::new(rows.iter().map(|r| r.allowance).collect::<Int64Array>()),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.consumed),
        )),
        Arc::new(
            rows.iter()
                .map(|r| r.allowance.map(|a| (a - r.consumed).max(0)))
                .collect::<Int64Array>(),
        ),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.overage_qty),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(
                rows.iter()
                    .map(|r| r.overage.replace('.', "").parse::<i128>().unwrap()),
            )
            .with_precision_and_scale(18, 6)
            .unwrap(),
        ),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.events))),
        Arc::new(
            rows.iter()
                .map(|r| r.last_event.map(micros))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.last_event.map(|_| format!("R-{}", r.msisdn)))
                .collect::<StringArray>(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|_| micros(as_of)))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| delivery))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// October, rated on 16 October at 14:08 Paris time (12:08 UTC).
///
/// - 33632260222 (C00002, S2H5G with DATA10): 80 % of its 2 h of calls,
///   5,760 s of 7,200: 1 h 36 min, 24 min left; of its data, 5 Go + 10 Go
///   = 15,728,640 KB, 16,252,928 KB consumed (15.5 Go: 103.3 %, 103 %
///   rounded down), nothing left, 524,288 KB over for 25.605000 € HT,
///   25,61 € to the cent (half away from zero); 3 MMS of 100 (3 %);
///   unlimited SMS, 42 sent; its option EU2H's 2 h to the EU, not used.
/// - 33632260054 (C00001) changed plan on 7 October: ILL20's data pool
///   from its row of 22 September 2025 (838,861 KB, 819.2 Mo, of 20 Go =
///   20,480 Mo: 4 %, 19.2 Go left) and ILL100's from 7 October (1 Go of
///   100: 1 %), listed in that order.
fn october() -> Vec<u8> {
    let rows = [
        Row {
            msisdn: "33632260222",
            customer: "C00002",
            plan: "S2H5G",
            start: "2025-10-10",
            group: "DATA_FR",
            allowance: Some(15_728_640),
            consumed: 16_252_928,
            overage_qty: 524_288,
            overage: "25.605000",
            events: 48,
            last_event: Some("2026-10-16T08:55:00Z"),
        },
        Row {
            msisdn: "33632260222",
            customer: "C00002",
            plan: "S2H5G",
            start: "2025-10-10",
            group: "VOICE_FR",
            allowance: Some(7200),
            consumed: 5760,
            overage_qty: 0,
            overage: "0.000000",
            events: 31,
            last_event: Some("2026-10-15T17:20:00Z"),
        },
        Row {
            msisdn: "33632260222",
            customer: "C00002",
            plan: "S2H5G",
            start: "2025-10-10",
            group: "VOICE_EU",
            allowance: Some(7200),
            consumed: 0,
            overage_qty: 0,
            overage: "0.000000",
            events: 0,
            last_event: None,
        },
        Row {
            msisdn: "33632260222",
            customer: "C00002",
            plan: "S2H5G",
            start: "2025-10-10",
            group: "SMS_FR",
            allowance: None,
            consumed: 42,
            overage_qty: 0,
            overage: "0.000000",
            events: 40,
            last_event: Some("2026-10-16T07:00:00Z"),
        },
        Row {
            msisdn: "33632260222",
            customer: "C00002",
            plan: "S2H5G",
            start: "2025-10-10",
            group: "MMS_FR",
            allowance: Some(100),
            consumed: 3,
            overage_qty: 0,
            overage: "0.000000",
            events: 3,
            last_event: Some("2026-10-02T10:00:00Z"),
        },
        Row {
            msisdn: "33632260054",
            customer: "C00001",
            plan: "ILL100",
            start: "2026-10-07",
            group: "DATA_FR",
            allowance: Some(104_857_600),
            consumed: 1_048_576,
            overage_qty: 0,
            overage: "0.000000",
            events: 12,
            last_event: Some("2026-10-15T20:00:00Z"),
        },
        Row {
            msisdn: "33632260054",
            customer: "C00001",
            plan: "ILL20",
            start: "2025-09-22",
            group: "DATA_FR",
            allowance: Some(20_971_520),
            consumed: 838_861,
            overage_qty: 0,
            overage: "0.000000",
            events: 9,
            last_event: Some("2026-10-06T20:00:00Z"),
        },
    ];
    parquet(
        &rows,
        "2026-10-16T12:08:00Z",
        "RatedCDRs_20261016_125700.csv",
    )
}

/// September, rated on 2 October at 10:15 Paris time: 33632260222's calls
/// (1 h of 2 h, 50 %), and 33632261133, a line that has no October row.
fn september() -> Vec<u8> {
    let rows = [
        Row {
            msisdn: "33632260222",
            customer: "C00002",
            plan: "S2H5G",
            start: "2025-10-10",
            group: "VOICE_FR",
            allowance: Some(7200),
            consumed: 3600,
            overage_qty: 0,
            overage: "0.000000",
            events: 20,
            last_event: Some("2026-09-30T18:00:00Z"),
        },
        Row {
            msisdn: "33632261133",
            customer: "C00018",
            plan: "BLOC1H",
            start: "2025-06-14",
            group: "SMS_FR",
            allowance: Some(100),
            consumed: 100,
            overage_qty: 0,
            overage: "0.000000",
            events: 100,
            last_event: Some("2026-09-29T18:00:00Z"),
        },
    ];
    parquet(
        &rows,
        "2026-10-02T08:15:00Z",
        "RatedCDRs_20261002_080700.csv",
    )
}

/// A workspace on the samples whose lake holds September's and October's
/// consumption.
fn lake_with_consumption() -> Workspace {
    let samples = fixtures().join("samples");
    let ws = Workspace::new(
        &samples.join("ftp"),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    for (month, bytes) in [("2026-09", september()), ("2026-10", october())] {
        let folder = ws.lake().join(format!("consumption/month={month}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("part-0.parquet"), bytes).unwrap();
    }
    ws
}

/// The cells of the row of `usage`'s table that starts with `label` and
/// `plan` (cells are apart by two spaces or more).
fn cells(stdout: &str, label: &str, plan: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_string)
                .collect::<Vec<String>>()
        })
        .find(|row| row.len() > 1 && row[0] == label && row[1] == plan)
        .unwrap_or_else(|| panic!("no row {label} {plan} in\n{stdout}"))
}

/// October's table for 33632260222: columns aligned on the widest cell,
/// the pool and plan to the left, figures to the right; `\u{a0}` is the
/// no-break space before €.
const OCTOBER_0222: &str = "\
usage of line 33632260222 (06 32 26 02 22), customer C00002, 2026-10
pool                            plan   allowance    consumed  remaining   used  overage
Appels en France                S2H5G        2 h  1 h 36 min     24 min   80 %   0,00\u{a0}€
SMS en France                   S2H5G   illimité      42 SMS   illimité      -   0,00\u{a0}€
MMS en France                   S2H5G    100 MMS       3 MMS     97 MMS    3 %   0,00\u{a0}€
Données en France               S2H5G      15 Go     15,5 Go       0 Mo  103 %  25,61\u{a0}€
Appels vers l'Union européenne  S2H5G        2 h       0 min        2 h    0 %   0,00\u{a0}€
as of 2026-10-16 14:08 Europe/Paris, last delivery RatedCDRs_20261016_125700.csv
";

#[test]
fn usage_prints_each_pool_of_the_latest_month_holding_the_line() {
    let ws = lake_with_consumption();
    // However the desk types the number.
    for typed in ["33632260222", "06 32 26 02 22", "+33632260222"] {
        let out = ws.run(&["usage", typed]).ok();
        assert_eq!(out.stdout, OCTOBER_0222, "{typed}:\n{}", out.stdout);
    }
    // September on request.
    let out = ws.run(&["usage", "0632260222", "--month", "2026-09"]).ok();
    assert_eq!(
        cells(&out.stdout, "Appels en France", "S2H5G"),
        [
            "Appels en France",
            "S2H5G",
            "2 h",
            "1 h",
            "1 h",
            "50 %",
            "0,00\u{a0}€"
        ]
    );
    assert!(
        out.stdout.ends_with(
            "as of 2026-10-02 10:15 Europe/Paris, last delivery RatedCDRs_20261002_080700.csv\n"
        ),
        "{}",
        out.stdout
    );
    // A plan change mid-month: two data pools, the older plan's first.
    let out = ws.run(&["usage", "33632260054"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert!(lines[2].contains("ILL20") && lines[3].contains("ILL100"));
    assert_eq!(
        cells(&out.stdout, "Données en France", "ILL20"),
        [
            "Données en France",
            "ILL20",
            "20 Go",
            "819,2 Mo",
            "19,2 Go",
            "4 %",
            "0,00\u{a0}€"
        ]
    );
    assert_eq!(
        cells(&out.stdout, "Données en France", "ILL100"),
        [
            "Données en France",
            "ILL100",
            "100 Go",
            "1 Go",
            "99 Go",
            "1 %",
            "0,00\u{a0}€"
        ]
    );
    // A line October does not hold: its latest month, September.
    let out = ws.run(&["usage", "33632261133"]).ok();
    assert!(
        out.stdout
            .starts_with("usage of line 33632261133 (06 32 26 11 33), customer C00018, 2026-09\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        cells(&out.stdout, "SMS en France", "BLOC1H"),
        [
            "SMS en France",
            "BLOC1H",
            "100 SMS",
            "100 SMS",
            "0 SMS",
            "100 %",
            "0,00\u{a0}€"
        ]
    );

    // --json: the figures in billed units, money as exact text.
    let report = ws.run(&["--json", "usage", "33632260222"]).ok().json();
    assert_eq!(report["month"], "2026-10");
    assert_eq!(report["customer_id"], "C00002");
    assert_eq!(report["as_of"], "2026-10-16T12:08:00Z");
    assert_eq!(report["last_delivery"], "RatedCDRs_20261016_125700.csv");
    let data = &report["pools"][3];
    assert_eq!(data["allowance_group"], "DATA_FR");
    assert_eq!(data["label"], "Données en France");
    assert_eq!(data["allowance"], 15_728_640);
    assert_eq!(data["remaining"], 0);
    assert_eq!(data["percent_used"], 103);
    assert_eq!(data["overage_amount"], "25.605000");
    let sms = &report["pools"][1];
    assert_eq!(sms["unlimited"], true);
    assert!(sms["allowance"].is_null() && sms["percent_used"].is_null());
}

#[test]
fn usage_says_in_one_line_what_it_cannot_show() {
    let ws = lake_with_consumption();
    let cases: [(&[&str], &str); 4] = [
        (
            &["usage", "33699999999"],
            "error: usage: no consumption for line 33699999999 in any month of the lake",
        ),
        (
            &["usage", "33632261133", "--month", "2026-10"],
            "error: usage: no consumption for line 33632261133 in 2026-10",
        ),
        (
            &["usage", "33632260222", "--month", "2026-08"],
            "error: usage: no consumption for line 33632260222 in 2026-08",
        ),
        (
            &["usage", "06 32 2x 02 22"],
            "error: usage: '06 32 2x 02 22' is not a mobile number: give its digits, as 33612345678, 0612345678 or +33612345678",
        ),
    ];
    for (args, line) in cases {
        let out = ws.run(args);
        assert_eq!((out.status, out.stderr.trim_end()), (1, line), "{args:?}");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    // A lake no rate has written consumption into.
    std::fs::remove_dir_all(ws.lake().join("consumption")).unwrap();
    let out = ws.run(&["usage", "33632260222"]);
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr.trim_end(),
        "error: usage: no consumption in the lake yet: `mvnobill rate --month YYYY-MM` writes it after each delivery"
    );
    // Not a command-line mistake of clap's: a month that is not one is.
    assert_eq!(
        ws.run(&["usage", "33632260222", "--month", "2026-13"])
            .status,
        2
    );
}

/// The same reading on an S3 lake (moto, as tests/s3.rs): the file put in
/// the bucket through object_store, `usage` reading it there.
#[test]
fn usage_reads_an_s3_lake() {
    use object_store::ObjectStoreExt;
    let server = crate::s3::S3Server::start("lake");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("lake")
        .with_endpoint(&server.endpoint)
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        store
            .put(
                &object_store::path::Path::from(
                    "mvnobill/consumption/month=2026-10/part-0.parquet",
                ),
                october().into(),
            )
            .await
            .unwrap();
    });
    let samples = fixtures().join("samples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mvnobill.toml"),
        format!(
            "[reference]\ndir = \"{}\"\nintegrator = \"{}\"\n\n\
             [lake]\nurl = \"s3://lake/mvnobill\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nallow_http = true\n\n\
             [state]\ndir = \"state\"\n",
            samples.join("reference").display(),
            samples.join("integrator.toml").display(),
            server.endpoint,
        ),
    )
    .unwrap();
    let out = crate::s3::mvnobill(dir.path(), &["usage", "33632260222"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, OCTOBER_0222);
}

// ---- the alerts of the samples month -------------------------------------------

/// The last RatedCDRs file of the first delivery: the files up to 16
/// October, 12:57.
const FIRST_PART_UNTIL: &str = "RatedCDRs_20261016_125700.csv";

/// The samples' FTP tree with only the RatedCDRs files up to `until`
/// (every file when None), copied into `to`.
fn deliver(to: &Path, until: Option<&str>) {
    let ftp = fixtures().join("samples/ftp");
    copy_dir(&ftp, to);
    if let Some(until) = until {
        for entry in std::fs::read_dir(to.join("RatedCDRs")).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_str().unwrap() > until {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}

/// The subject of an alert: group, threshold, allowance, line.
fn subject(msisdn: &str, group: &str, threshold: u32) -> String {
    let (label, allowance) = match group {
        "VOICE_FR" => ("Appels en France", "1 h"),
        "DATA_FR" if msisdn == "33632260544" => ("Données en France", "20 Go"),
        "DATA_FR" => ("Données en France", "1 Go"),
        other => panic!("no {other} alert expected"),
    };
    let national: String = format!("0{}", &msisdn[2..])
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{label} : {threshold} % de {allowance} utilisés – ligne {national} – ExempleMobile")
}

/// (recipient, subject) of the mails the sink received from `from` on,
/// sorted.
fn mails(sink: &Sink, from: usize) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = sink.messages()[from..]
        .iter()
        .map(|m| {
            (
                m["rcpt_tos"][0].as_str().unwrap().to_string(),
                m["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// (recipient, subject) of the alerts expected: (customer number, line,
/// group, threshold).
fn expected(alerts: &[(u32, &str, &str, u32)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = alerts
        .iter()
        .map(|&(customer, msisdn, group, threshold)| {
            (
                format!("client{customer}@example.org"),
                subject(msisdn, group, threshold),
            )
        })
        .collect();
    out.sort();
    out
}

/// The samples month delivered in two parts, `sync`, `land` and `rate`
/// after each, alerts at 80 % and 100 %. The pools and their consumption
/// come from the sample files alone (`tests/python/alert_pools.py
/// RatedCDRs_20261016_125700.csv`, the standard library's csv, rating.md
/// §1–4: first copy of each cdr_id, the subscription row of the local date,
/// HOME/EU roaming only, zone by longest prefix, the grid's increments;
/// the sums match what `rate` of today puts in rated_cdrs, pool for pool:
/// 283 after the first part, 392 after both). Only the
/// BLOC1H pools (1 h = 3,600 s of calls, 1 Go = 1,048,576 KB of data, 100
/// SMS) and 33632260544's 20 Go (20,971,520 KB) reach 80 %; an MMS pool of
/// BLOC1H (allowance 0) has no percentage, the unlimited ones none either.
///
/// First part, files up to 16 October 12:57 (the month's first rate, every
/// pool at 0 before), 14 alerts, 12 of them at 100 % with 80 % skipped:
///
/// | line        | cust.  | group | consumed / allowance      |      | mailed |
/// |-------------|--------|-------|---------------------------|------|--------|
/// | 33632260020 | C00001 | data  |    968,700 / 1,048,576 KB |  92 %|  80    |
/// | 33632260475 | C00008 | voice |      3,315 / 3,600 s      |  92 %|  80    |
/// | 33632260380 | C00004 | voice |      5,280 / 3,600 s      | 146 %| 100    |
/// | 33632260384 | C00004 | voice |      4,080 / 3,600 s      | 113 %| 100    |
/// | 33632260486 | C00008 | data  |  1,355,776 / 1,048,576 KB | 129 %| 100    |
/// | 33632260646 | C00011 | data  | 14,253,600 / 1,048,576 KB |1359 %| 100    |
/// | 33632260646 | C00011 | voice |     19,813 / 3,600 s      | 550 %| 100    |
/// | 33632260908 | C00015 | data  | 11,084,800 / 1,048,576 KB |1057 %| 100    |
/// | 33632260908 | C00015 | voice |     11,790 / 3,600 s      | 327 %| 100    |
/// | 33632261102 | C00018 | voice |      4,470 / 3,600 s      | 124 %| 100    |
/// | 33632261133 | C00018 | data  |  1,048,924 / 1,048,576 KB | 100 %| 100    |
/// | 33632261133 | C00018 | voice |      3,840 / 3,600 s      | 106 %| 100    |
/// | 33632261251 | C00021 | data  |  1,405,500 / 1,048,576 KB | 134 %| 100    |
/// | 33632261286 | C00021 | data  |  1,438,622 / 1,048,576 KB | 137 %| 100    |
///
/// (33632260544's data at 76.2 % and 33632260187's calls at 70.8 % cross
/// nothing yet.)
///
/// Second part, the rest of the files (late events of the first half
/// included): 16 alerts, 4 at 80 % and 12 at 100 % (10 with 80 % skipped,
/// 2 whose 80 % went with the first part):
///
/// | line        | cust.  | group | before → after             |        | mailed |
/// |-------------|--------|-------|----------------------------|--------|--------|
/// | 33632260187 | C00001 | voice |   2,550 → 3,030 s          | → 84 % |  80    |
/// | 33632260475 | C00008 | data  | 160,540 → 1,042,770 KB     | → 99 % |  80    |
/// | 33632260779 | C00014 | data  |       0 → 1,004,960 KB     | → 95 % |  80 (a line from 18 October: its pool is new) |
/// | 33632261251 | C00021 | voice |     960 → 2,880 s          | → 80 % exactly | 80 |
/// | 33632260020 | C00001 | data  | 968,700 → 6,921,000 KB     | → 660 %| 100    |
/// | 33632260475 | C00008 | voice |   3,315 → 4,617 s          | → 128 %| 100    |
/// | 33632260020 | C00001 | voice |     600 → 4,620 s          | → 128 %| 100, 80 skipped |
/// | 33632260544 | C00009 | data  | 15,987,200 → 22,545,000 KB of 20 Go | → 107 % | 100, 80 skipped |
/// | 33632260940 | C00016 | voice |   2,109 → 3,908 s          | → 108 %| 100, 80 skipped |
/// | 33632261006 | C00016 | data  | 369,800 → 1,514,200 KB     | → 144 %| 100, 80 skipped |
/// | 33632261006 | C00016 | voice |   1,620 → 4,080 s          | → 113 %| 100, 80 skipped |
/// | 33632261077 | C00017 | data  |       0 → 1,057,792 KB     | → 100 %| 100, 80 skipped |
/// | 33632261376 | C00023 | voice |     989 → 4,562 s          | → 126 %| 100, 80 skipped |
/// | 33632261458 | C00023 | voice |       0 → 5,580 s (new line, 17 October) | → 155 % | 100, 80 skipped |
/// | 33632261489 | C00024 | voice |       0 → 4,980 s (new line, 17 October) | → 138 % | 100, 80 skipped |
/// | 33632261530 | C00024 | voice |     995 → 3,739 s          | → 103 %| 100, 80 skipped |
///
/// A third rate with nothing new mails nothing.
#[test]
#[ignore = "needs the incremental rate (lead's branch)"]
fn each_delivery_mails_the_thresholds_it_crosses_once() {
    let sink = Sink::start(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("ftp");
    deliver(&source, Some(FIRST_PART_UNTIL));
    let samples = fixtures().join("samples");
    let ws = Workspace::new(
        &source,
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\n[alerts]\nthresholds = [80, 100]\n",
        sink.port
    ));
    std::fs::write(&config, text).unwrap();
    let rate = || {
        for step in [&["sync"][..], &["land"], &["rate", "--month", "2026-10"]] {
            ws.run(step).ok();
        }
    };

    rate();
    assert_eq!(
        mails(&sink, 0),
        expected(&[
            (1, "33632260020", "DATA_FR", 80),
            (8, "33632260475", "VOICE_FR", 80),
            (4, "33632260380", "VOICE_FR", 100),
            (4, "33632260384", "VOICE_FR", 100),
            (8, "33632260486", "DATA_FR", 100),
            (11, "33632260646", "DATA_FR", 100),
            (11, "33632260646", "VOICE_FR", 100),
            (15, "33632260908", "DATA_FR", 100),
            (15, "33632260908", "VOICE_FR", 100),
            (18, "33632261102", "VOICE_FR", 100),
            (18, "33632261133", "DATA_FR", 100),
            (18, "33632261133", "VOICE_FR", 100),
            (21, "33632261251", "DATA_FR", 100),
            (21, "33632261286", "DATA_FR", 100),
        ])
    );
    // The consumption of the first part, as the desk sees it: 968,700 KB
    // is 946 Mo (945.996), 79,876 KB left 78 Mo.
    let out = ws.run(&["usage", "33632260020"]).ok();
    assert_eq!(
        cells(&out.stdout, "Données en France", "BLOC1H")[..6],
        [
            "Données en France",
            "BLOC1H",
            "1 Go",
            "946 Mo",
            "78 Mo",
            "92 %"
        ]
    );
    assert!(
        out.stdout
            .ends_with(&format!("last delivery {FIRST_PART_UNTIL}\n")),
        "{}",
        out.stdout
    );

    let first = sink.messages().len();
    deliver(&source, None);
    rate();
    assert_eq!(
        mails(&sink, first),
        expected(&[
            (1, "33632260187", "VOICE_FR", 80),
            (8, "33632260475", "DATA_FR", 80),
            (14, "33632260779", "DATA_FR", 80),
            (21, "33632261251", "VOICE_FR", 80),
            (1, "33632260020", "DATA_FR", 100),
            (8, "33632260475", "VOICE_FR", 100),
            (1, "33632260020", "VOICE_FR", 100),
            (9, "33632260544", "DATA_FR", 100),
            (16, "33632260940", "VOICE_FR", 100),
            (16, "33632261006", "DATA_FR", 100),
            (16, "33632261006", "VOICE_FR", 100),
            (17, "33632261077", "DATA_FR", 100),
            (23, "33632261376", "VOICE_FR", 100),
            (23, "33632261458", "VOICE_FR", 100),
            (24, "33632261489", "VOICE_FR", 100),
            (24, "33632261530", "VOICE_FR", 100),
        ])
    );
    // 33632261251's calls at exactly 80 %: 2,880 s of 3,600 s.
    let at_80 = sink
        .messages()
        .into_iter()
        .find(|m| m["subject"].as_str() == Some(subject("33632261251", "VOICE_FR", 80).as_str()))
        .unwrap();
    let body = at_80["text"].as_str().unwrap();
    for part in [
        "Sur votre ligne 06 32 26 12 51, vous avez utilisé 80 % de ce que votre forfait comprend en octobre 2026 :",
        "- consommé : 48 min (80 %)\n- restant : 12 min\n",
    ] {
        assert!(body.contains(part), "{part}\n{body}");
    }
    let out = ws.run(&["usage", "0632261251"]).ok();
    assert_eq!(
        cells(&out.stdout, "Appels en France", "BLOC1H"),
        [
            "Appels en France",
            "BLOC1H",
            "1 h",
            "48 min",
            "12 min",
            "80 %",
            "0,00\u{a0}€"
        ]
    );
    assert_eq!(
        cells(&out.stdout, "SMS en France", "BLOC1H"),
        [
            "SMS en France",
            "BLOC1H",
            "100 SMS",
            "8 SMS",
            "92 SMS",
            "8 %",
            "0,00\u{a0}€"
        ]
    );
    assert!(
        out.stdout
            .ends_with("last delivery RatedCDRs_20261102_164300.csv\n"),
        "{}",
        out.stdout
    );

    let second = sink.messages().len();
    assert_eq!(second, 14 + 16);
    rate();
    assert_eq!(
        sink.messages().len(),
        second,
        "a rate with nothing new mails nothing"
    );
}
