//! `emgate status`: the per-site and per-meter view of a running gateway,
//! fetched from its HTTP API and rendered as a terminal table.
//!
//! It reads the same JSON the status page reads (`/api/sites`,
//! `/api/meters`, `/api/endpoints`, `/api/boilers`, `/api/summary`), so the
//! terminal and the browser never disagree about a meter's state, a bus's
//! round time or a boiler's efficiency.

use std::fmt::Write as _;

use super::Summary;
use super::{BoilerSnapshot, EndpointSnapshot, MeterSnapshot, SiteSnapshot};

/// Why the status could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusCliError {
    /// No HTTP answer (gateway not running, wrong address, …).
    #[error("{url}: {source}")]
    Request {
        /// The URL requested.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The API answered with an error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The response body (the API's JSON reason).
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("{url}: unexpected answer: {source}")]
    Decode {
        /// The URL requested.
        url: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Fetches the status of the gateway whose API is at `url` (e.g.
/// `http://127.0.0.1:9184`) and renders it as text tables.
///
/// # Errors
/// [`StatusCliError`] when the API cannot be reached, refuses the token or
/// answers something else than its JSON.
pub async fn run(url: &str, token: Option<&str>) -> Result<String, StatusCliError> {
    // A gateway from before bus timing has no `/api/endpoints`, nor
    // `/api/boilers` before boilers: those tables are then left out.
    let (sites, meters, buses, boilers, summary) = fetch_all(url, token).await?;
    Ok(render_all(&sites, &meters, &buses, &boilers, &summary))
}

/// `emgate status` over several gateways (the shards of one province):
/// fetches each, merges their sites, meters, buses and boilers into one
/// view with the totals summed, and says which gateways did not answer
/// (the sites of an unreachable shard are simply absent: its own status
/// cannot be read). One URL gives exactly what [`run`] gives.
///
/// Returns the text and the errors of the gateways that failed; the text
/// is empty only when every gateway failed.
pub async fn run_many(urls: &[String], token: Option<&str>) -> (String, Vec<StatusCliError>) {
    if let [url] = urls {
        return match run(url, token).await {
            Ok(text) => (text, Vec::new()),
            Err(e) => (String::new(), vec![e]),
        };
    }
    let mut sites = Vec::new();
    let mut meters = Vec::new();
    let mut buses = Vec::new();
    let mut boilers = Vec::new();
    let mut total: Option<Summary> = None;
    let mut failed = Vec::new();
    let mut answered = Vec::new();
    for url in urls {
        match fetch_all(url, token).await {
            Ok((s, m, b, bo, sum)) => {
                sites.extend(s);
                meters.extend(m);
                buses.extend(b);
                boilers.extend(bo);
                total = Some(match total {
                    None => sum,
                    Some(t) => Summary {
                        time: t.time.max(sum.time),
                        readings_total: t.readings_total + sum.readings_total,
                        lines_spooled: t.lines_spooled + sum.lines_spooled,
                        spool_bytes: t.spool_bytes + sum.spool_bytes,
                        spool_records: t.spool_records + sum.spool_records,
                        lines_written: t.lines_written + sum.lines_written,
                        meters: t.meters + sum.meters,
                        up: t.up + sum.up,
                        down: t.down + sum.down,
                        bad: t.bad + sum.bad,
                        sink_reachable: t.sink_reachable && sum.sink_reachable,
                    },
                });
                answered.push(url.as_str());
            }
            Err(e) => failed.push(e),
        }
    }
    let Some(total) = total else {
        return (String::new(), failed);
    };
    let mut out = format!(
        "gateways: {} of {} answered ({})\n",
        answered.len(),
        urls.len(),
        answered.join(", ")
    );
    for e in &failed {
        let _ = writeln!(out, "NOT ANSWERING: {e}");
    }
    out.push('\n');
    out.push_str(&render_all(&sites, &meters, &buses, &boilers, &total));
    (out, failed)
}

/// Every snapshot of the gateway at `url`.
async fn fetch_all(
    url: &str,
    token: Option<&str>,
) -> Result<
    (
        Vec<SiteSnapshot>,
        Vec<MeterSnapshot>,
        Vec<EndpointSnapshot>,
        Vec<BoilerSnapshot>,
        Summary,
    ),
    StatusCliError,
> {
    let base = url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let sites = fetch(&client, base, "/api/sites", token).await?;
    let meters = fetch(&client, base, "/api/meters", token).await?;
    let buses = match fetch(&client, base, "/api/endpoints", token).await {
        Err(StatusCliError::Status { status: 404, .. }) => Vec::new(),
        other => other?,
    };
    let boilers = match fetch(&client, base, "/api/boilers", token).await {
        Err(StatusCliError::Status { status: 404, .. }) => Vec::new(),
        other => other?,
    };
    let summary = fetch(&client, base, "/api/summary", token).await?;
    Ok((sites, meters, buses, boilers, summary))
}

async fn fetch<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
) -> Result<T, StatusCliError> {
    let url = format!("{base}{path}");
    let mut req = client.get(&url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let request_error = |source| StatusCliError::Request {
        url: url.clone(),
        source,
    };
    let resp = req.send().await.map_err(request_error)?;
    let status = resp.status();
    let body = resp.text().await.map_err(request_error)?;
    if !status.is_success() {
        return Err(StatusCliError::Status {
            url,
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body).map_err(|source| StatusCliError::Decode { url, source })
}

/// A duration in seconds as `45s`, `12m`, `3h`, `2d`.
fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Left-aligned columns separated by two spaces; no trailing blanks.
fn table(header: &[&str], rows: &[Vec<String>], out: &mut String) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(s, "{cell:<w$}  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Milliseconds with one decimal (`2250.0ms`), `-` when unknown.
fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}ms"))
}

/// The bus table: one row per endpoint, its last and planned round against
/// its budget; nothing when there is no endpoint.
fn render_buses(buses: &[EndpointSnapshot], out: &mut String) {
    if buses.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = buses
        .iter()
        .map(|b| {
            vec![
                b.id.clone(),
                b.transport.clone(),
                b.meters.to_string(),
                b.requests.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                ms(b.round_ms),
                ms(b.planned_round_ms),
                b.budget_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms")),
                b.utilisation.map_or_else(
                    || "-".to_owned(),
                    |u| format!("{:.1}%{}", u * 100.0, if u > 1.0 { " OVER" } else { "" }),
                ),
            ]
        })
        .collect();
    table(
        &[
            "BUS",
            "TRANSPORT",
            "METERS",
            "REQUESTS",
            "ROUND",
            "PLANNED",
            "BUDGET",
            "UTILISATION",
        ],
        &rows,
        out,
    );
    out.push('\n');
}

/// An efficiency as `83.9%`, `-` when there is none.
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}%"))
}

/// The boiler table, one line per boiler (nothing without boilers): its
/// shortest window that has been written, with state, both efficiencies,
/// grade and reasons.
fn render_boilers(boilers: &[BoilerSnapshot], out: &mut String) {
    if boilers.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = boilers
        .iter()
        .map(|b| {
            let mut row = vec![b.site.clone(), b.id.clone(), b.kind.clone()];
            match b.windows.first() {
                None => row.extend(["-", "NO WINDOW YET", "-", "-", "-", "-"].map(str::to_owned)),
                Some(w) => {
                    let at = jiff::Timestamp::from_second(w.start)
                        .map_or_else(|_| w.start.to_string(), |t| t.to_string());
                    row.extend([
                        format!("{} {at}", w.window),
                        w.state.to_uppercase(),
                        pct(w.eta_direct),
                        pct(w.eta_indirect),
                        w.grade.clone().unwrap_or_else(|| "-".to_owned()),
                        if w.reasons.is_empty() {
                            "-".to_owned()
                        } else {
                            w.reasons.join(",")
                        },
                    ]);
                }
            }
            row
        })
        .collect();
    table(
        &[
            "SITE",
            "BOILER",
            "KIND",
            "WINDOW",
            "STATE",
            "ETA DIRECT",
            "ETA INDIRECT",
            "GRADE",
            "REASONS",
        ],
        &rows,
        out,
    );
}

/// The text `emgate status` prints for these snapshots (a gateway
/// without boilers).
#[must_use]
pub fn render(
    sites: &[SiteSnapshot],
    meters: &[MeterSnapshot],
    buses: &[EndpointSnapshot],
    summary: &Summary,
) -> String {
    render_all(sites, meters, buses, &[], summary)
}

/// The text `emgate status` prints: sites, meters, buses, boilers, totals.
#[must_use]
pub fn render_all(
    sites: &[SiteSnapshot],
    meters: &[MeterSnapshot],
    buses: &[EndpointSnapshot],
    boilers: &[BoilerSnapshot],
    summary: &Summary,
) -> String {
    let mut out = String::new();
    let site_rows: Vec<Vec<String>> = sites
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.name.clone(),
                s.meters.to_string(),
                s.up.to_string(),
                s.down.to_string(),
                s.bad.to_string(),
                format!(
                    "{:.1}%{}",
                    s.completeness_today * 100.0,
                    if s.completeness_ok {
                        ""
                    } else {
                        " (below 90%)"
                    }
                ),
            ]
        })
        .collect();
    table(
        &["SITE", "NAME", "METERS", "UP", "DOWN", "BAD", "TODAY"],
        &site_rows,
        &mut out,
    );
    out.push('\n');
    let meter_rows: Vec<Vec<String>> = meters
        .iter()
        .map(|m| {
            let quality = if m.reasons.is_empty() {
                "good".to_owned()
            } else {
                m.reasons.join("+")
            };
            let calibration = match (&m.calibration_due, m.calibration_overdue) {
                (Some(d), true) => format!("{d} OVERDUE"),
                (Some(d), false) => d.clone(),
                (None, _) => "-".to_owned(),
            };
            vec![
                m.site.clone(),
                m.id.clone(),
                m.energy.clone(),
                m.source.clone(),
                m.state.to_uppercase(),
                m.last_good_age_secs
                    .map_or_else(|| "never".to_owned(), |s| format!("{} ago", age(s))),
                quality,
                m.consecutive_failures.to_string(),
                calibration,
            ]
        })
        .collect();
    table(
        &[
            "SITE",
            "METER",
            "ENERGY",
            "SOURCE",
            "STATE",
            "LAST GOOD",
            "QUALITY",
            "FAILS",
            "CALIBRATION",
        ],
        &meter_rows,
        &mut out,
    );
    out.push('\n');
    render_buses(buses, &mut out);
    if !boilers.is_empty() {
        render_boilers(boilers, &mut out);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "meters: {} up, {} down, {} bad of {}",
        summary.up, summary.down, summary.bad, summary.meters
    );
    let _ = writeln!(
        out,
        "backlog: {} records, {} bytes in the spool; output {} ({} lines written)",
        summary.spool_records,
        summary.spool_bytes,
        if summary.sink_reachable {
            "accepting writes"
        } else {
            "NOT REACHABLE"
        },
        summary.lines_written
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(10_800), "3h");
        assert_eq!(age(259_200), "3d");
    }

    #[test]
    fn renders_sites_meters_and_backlog() {
        let sites = vec![SiteSnapshot {
            id: "plant-a".into(),
            name: "Plant A".into(),
            meters: 2,
            up: 1,
            down: 1,
            bad: 0,
            completeness_today: 0.5,
            completeness_ok: false,
        }];
        let meter = |id: &str, state: &str, age: Option<i64>, reasons: Vec<String>| MeterSnapshot {
            id: id.into(),
            site: "plant-a".into(),
            energy: "electricity".into(),
            level: 1,
            source: "modbus:ep1/1".into(),
            state: state.into(),
            last_slot: Some(0),
            last_good_age_secs: age,
            quality: 0,
            reasons,
            consecutive_failures: u32::from(state == "down") * 3,
            backoff_until: None,
            calibration_due: (id == "m2").then(|| "2020-01-01".to_owned()),
            calibration_overdue: id == "m2",
            polls: 0,
            timeouts: 0,
            exceptions: 0,
        };
        let meters = vec![
            meter("m1", "up", Some(5), vec![]),
            meter("m2", "down", None, vec!["timeout".into()]),
        ];
        let summary = Summary {
            time: 0,
            readings_total: 10,
            lines_spooled: 10,
            spool_bytes: 300,
            spool_records: 2,
            lines_written: 8,
            meters: 2,
            up: 1,
            down: 1,
            bad: 0,
            sink_reachable: false,
        };
        let buses = vec![
            EndpointSnapshot {
                id: "rs485".into(),
                transport: "rtu_over_tcp".into(),
                meters: 30,
                requests: Some(90),
                round_ms: Some(5_512.25),
                planned_round_ms: Some(2250.0),
                budget_ms: Some(5000),
                utilisation: Some(1.10245),
            },
            EndpointSnapshot {
                id: "ep1".into(),
                transport: "tcp".into(),
                meters: 2,
                requests: None,
                round_ms: None,
                planned_round_ms: None,
                budget_ms: Some(1000),
                utilisation: None,
            },
        ];
        let text = render(&sites, &meters, &buses, &summary);
        assert_eq!(
            text,
            "SITE     NAME     METERS  UP  DOWN  BAD  TODAY\n\
             plant-a  Plant A  2       1   1     0    50.0% (below 90%)\n\
             \n\
             SITE     METER  ENERGY       SOURCE        STATE  LAST GOOD  QUALITY  FAILS  CALIBRATION\n\
             plant-a  m1     electricity  modbus:ep1/1  UP     5s ago     good     0      -\n\
             plant-a  m2     electricity  modbus:ep1/1  DOWN   never      timeout  3      2020-01-01 OVERDUE\n\
             \n\
             BUS    TRANSPORT     METERS  REQUESTS  ROUND     PLANNED   BUDGET  UTILISATION\n\
             rs485  rtu_over_tcp  30      90        5512.2ms  2250.0ms  5000ms  110.2% OVER\n\
             ep1    tcp           2       -         -         -         1000ms  -\n\
             \n\
             meters: 1 up, 1 down, 0 bad of 2\n\
             backlog: 2 records, 300 bytes in the spool; output NOT REACHABLE (8 lines written)\n"
        );
    }
}
