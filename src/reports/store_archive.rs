//! [`ArchiveStore`]: the reports' [`Store`] over the gateway's local
//! archive, so every report can be made without InfluxDB (the demo, a
//! database that was lost).
//!
//! Why it reads files and not a database: the archive is line protocol on
//! disk (see `crate::archive`); this store parses the days a range covers,
//! keeps one point per series and timestamp as InfluxDB would, and turns
//! them into the same rows the InfluxQL store returns. Sums are computed
//! here. File reading runs on a blocking thread.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::tz::TimeZone;

use super::{SiteSum, Sites, Store, StoreError, WindowRow};
use crate::archive::format::Point;
use crate::archive::reader::{Filter, read_all, read_range};
use crate::entries::Entry;

/// Reports from the archive directory `<data_dir>/archive`.
#[derive(Debug, Clone)]
pub struct ArchiveStore {
    dir: PathBuf,
    tz: TimeZone,
}

impl ArchiveStore {
    /// A store over the archive `dir`, whose files are named by the date in `tz`.
    #[must_use]
    pub fn new(dir: PathBuf, tz: TimeZone) -> ArchiveStore {
        ArchiveStore { dir, tz }
    }

    /// The archive of a configuration (`gateway.data_dir`, `gateway.timezone`).
    #[must_use]
    pub fn from_config(config: &crate::config::Config) -> ArchiveStore {
        ArchiveStore::new(
            crate::archive::dir_of(&config.gateway.data_dir),
            config.gateway.timezone.clone(),
        )
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Archive {
            path: self.dir.display().to_string(),
            message,
        }
    }

    /// Points of `measurement` with window tag `window`, of `sites`, in `[from, to)`.
    async fn points(
        &self,
        measurement: &str,
        window: Option<&str>,
        sites: &Sites,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<Point>, StoreError> {
        let filter = Filter {
            measurements: vec![measurement.to_owned()],
            sites: match sites {
                Sites::All => None,
                Sites::Only(s) => Some(s.clone()),
            },
            time: None,
        };
        let (dir, tz) = (self.dir.clone(), self.tz.clone());
        let read = tokio::task::spawn_blocking(move || match range {
            Some((from, to)) => read_range(&dir, &tz, from, to, &filter),
            None => read_all(&dir, &filter),
        })
        .await
        .map_err(|e| self.error(format!("reader failed: {e}")))?;
        let (points, _stats) = read.map_err(|e| match e {
            crate::archive::ArchiveError::Io {
                path,
                what,
                message,
            } => StoreError::Archive {
                path: path.display().to_string(),
                message: format!("{what}: {message}"),
            },
            crate::archive::ArchiveError::Missing(path) => StoreError::Archive {
                path: path.display().to_string(),
                message: "no such directory; check gateway.data_dir (the archive is \
                          <data_dir>/archive) and that gateway.archive_days is not 0"
                    .to_owned(),
            },
            other @ crate::archive::ArchiveError::Output(_) => self.error(other.to_string()),
        })?;
        Ok(points
            .into_iter()
            .filter(|p| window.is_none_or(|w| p.tag("window") == Some(w)))
            .collect())
    }
}

/// A `consumption` or `site_consumption` point as a row; `None` without `amount`.
fn row(p: &Point, meter: bool) -> Option<WindowRow> {
    Some(WindowRow {
        time: p.time,
        site: p.tag("site")?.to_owned(),
        meter: if meter {
            Some(p.tag("meter")?.to_owned())
        } else {
            None
        },
        energy: p.tag("energy").unwrap_or_default().to_owned(),
        unit: p.tag("unit").unwrap_or_default().to_owned(),
        window: p.tag("window").unwrap_or_default().to_owned(),
        amount: p.float("amount")?,
        kgce: p.float("kgce"),
        controlled_kgce: p.float("controlled_kgce"),
        coverage: p.float("coverage"),
        estimated: match p.field("estimated") {
            Some(crate::archive::format::Value::Bool(b)) => Some(*b),
            _ => None,
        },
    })
}

/// An `entry` point as an [`Entry`]; `None` when a required part is missing.
fn entry(p: &Point) -> Option<Entry> {
    let s = |k: &str| p.string(k).unwrap_or_default().to_owned();
    Some(Entry {
        id: p.string("id")?.to_owned(),
        site: p.tag("site")?.to_owned(),
        item: p.tag("item")?.to_owned(),
        meter: p.tag("meter").map(str::to_owned),
        boiler: p.tag("boiler").map(str::to_owned),
        period: p.tag("period")?.to_owned(),
        period_start: s("period_start"),
        period_end: s("period_end"),
        value: p.float("value")?,
        unit: s("unit"),
        entered_by: s("entered_by"),
        reason: s("reason"),
        supersedes: s("supersedes"),
        time: p.time,
    })
}

impl Store for ArchiveStore {
    async fn site_rows(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowRow>, StoreError> {
        let points = self
            .points("site_consumption", Some(window), sites, Some((from, to)))
            .await?;
        Ok(points.iter().filter_map(|p| row(p, false)).collect())
    }

    async fn meter_rows(
        &self,
        window: &str,
        sites: &Sites,
        level: Option<u8>,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowRow>, StoreError> {
        let level = level.map(|l| l.to_string());
        let points = self
            .points("consumption", Some(window), sites, Some((from, to)))
            .await?;
        Ok(points
            .iter()
            .filter(|p| level.as_deref().is_none_or(|l| p.tag("level") == Some(l)))
            .filter_map(|p| row(p, true))
            .collect())
    }

    async fn site_sums(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> Result<Vec<SiteSum>, StoreError> {
        let rows = self.site_rows(window, sites, from, to).await?;
        let mut sums: BTreeMap<(String, String, String), SiteSum> = BTreeMap::new();
        for r in rows {
            let s = sums
                .entry((r.site.clone(), r.energy.clone(), r.unit.clone()))
                .or_insert_with(|| SiteSum {
                    site: r.site.clone(),
                    energy: r.energy.clone(),
                    unit: r.unit.clone(),
                    amount: 0.0,
                    kgce: 0.0,
                    controlled_kgce: 0.0,
                    windows: 0,
                });
            s.amount += r.amount;
            s.kgce += r.kgce.unwrap_or(0.0);
            s.controlled_kgce += r.controlled_kgce.unwrap_or(0.0);
            s.windows += 1;
        }
        Ok(sums.into_values().collect())
    }

    async fn entries(&self, sites: &Sites) -> Result<Vec<Entry>, StoreError> {
        let points = self.points("entry", None, sites, None).await?;
        Ok(points.iter().filter_map(entry).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_sums_and_entries_from_hand_made_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tz = TimeZone::get("Asia/Shanghai").expect("tz");
        // 2026-03-05T00:00:00+08:00 = 1772640000.
        let t = 1_772_640_000;
        let lines = format!(
            "site_consumption,energy=total,site=S1,unit=kgce,window=1d amount=10.0,kgce=10.0,meters=2i,coverage=1.0,controlled_kgce=8.0 {t}\n\
             site_consumption,energy=total,site=S1,unit=kgce,window=1d amount=12.0,kgce=12.0,meters=2i,coverage=1.0,controlled_kgce=9.0 {t}\n\
             site_consumption,energy=total,site=S1,unit=kgce,window=1d amount=5.0,kgce=5.0,meters=2i,coverage=1.0,controlled_kgce=4.0 {}\n\
             site_consumption,energy=total,site=S2,unit=kgce,window=1d amount=7.0,kgce=7.0,meters=1i,coverage=1.0,controlled_kgce=7.0 {t}\n\
             consumption,energy=electricity,level=1,meter=m1,site=S1,unit=kwh,window=1d amount=81.37,kgce=10.0,coverage=1.0,estimated=false {t}\n\
             consumption,energy=electricity,level=2,meter=m2,site=S1,unit=kwh,window=1d amount=3.0,coverage=0.5,estimated=true {t}\n\
             entry,item=output_t,period=2026-03,site=S1 value=100.0,unit=\"t\",period_start=\"2026-03-01T00:00:00+08:00\",period_end=\"2026-04-01T00:00:00+08:00\",entered_by=\"li\",reason=\"\",id=\"01ABCDEFGH0123456789ABCDEF\",supersedes=\"\" {}\n",
            t + 86_400,
            t + 3600
        );
        crate::archive::append_now(dir.path(), &tz, lines.as_bytes()).expect("write");
        let store = ArchiveStore::new(dir.path().to_path_buf(), tz);
        let only = Sites::Only(vec!["S1".to_owned()]);
        let rows = store
            .site_rows("1d", &only, t, t + 2 * 86_400)
            .await
            .expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].amount, rows[0].controlled_kgce), (12.0, Some(9.0)));
        let sums = store
            .site_sums("1d", &Sites::All, t, t + 2 * 86_400)
            .await
            .expect("sums");
        assert_eq!(sums.len(), 2);
        assert_eq!(
            (sums[0].site.as_str(), sums[0].amount, sums[0].windows),
            ("S1", 17.0, 2)
        );
        assert_eq!(sums[0].controlled_kgce, 13.0);
        let level1 = store
            .meter_rows("1d", &only, Some(1), t, t + 86_400)
            .await
            .expect("meters");
        assert_eq!(level1.len(), 1);
        assert_eq!(level1[0].meter.as_deref(), Some("m1"));
        assert_eq!(level1[0].estimated, Some(false));
        let entries = store.entries(&only).await.expect("entries");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].value, 100.0);
        assert_eq!(entries[0].time, t + 3600);
        assert!(
            store
                .site_rows("1d", &Sites::Only(vec!["S9".to_owned()]), t, t + 86_400)
                .await
                .expect("none")
                .is_empty()
        );
        let missing = ArchiveStore::new(dir.path().join("nope"), TimeZone::UTC);
        let e = missing.entries(&Sites::All).await.expect_err("missing");
        assert!(e.to_string().contains("no such directory"), "{e}");
    }
}
