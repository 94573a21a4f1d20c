//! Which store a report reads: InfluxDB (InfluxQL over `/query`) or the
//! gateway's local archive.
//!
//! Why a choice: the database is where every gateway writes, so it is the
//! default; the archive is what one gateway kept itself, so a site without
//! InfluxDB (a file output, the demo) or with a lost database still gets
//! its reports. `--archive` (CLI) asks for the archive explicitly.

use super::store_archive::ArchiveStore;
use super::store_influx::{InfluxOverrides, InfluxStore};
use super::{ReportError, SiteSum, Sites, Store, StoreError, WindowRow};
use crate::config::{Config, OutputConfig};
use crate::entries::Entry;

/// The store a report reads.
#[derive(Debug, Clone)]
pub enum Source {
    /// InfluxDB, with InfluxQL.
    Influx(InfluxStore),
    /// `<data_dir>/archive` of the configuration.
    Archive(ArchiveStore),
}

impl Source {
    /// The archive when `archive` is asked for, or when the configuration
    /// writes to a file and no `--url` names a database; else the
    /// configuration's InfluxDB with `overrides`.
    ///
    /// # Errors
    /// No database can be named, or the URL is not one.
    pub fn open(
        config: &Config,
        overrides: &InfluxOverrides,
        archive: bool,
    ) -> Result<Source, ReportError> {
        let file_only = matches!(config.output, OutputConfig::File(_)) && overrides.url.is_none();
        if archive || file_only {
            if config.gateway.archive_days == 0 {
                return Err(ReportError::Request(
                    "there is no local archive to read ([gateway] archive_days = 0) and no InfluxDB: \
                     give --url and --db"
                        .to_owned(),
                ));
            }
            return Ok(Source::Archive(ArchiveStore::from_config(config)));
        }
        InfluxStore::from_config(&config.output, overrides)
            .map(Source::Influx)
            .map_err(ReportError::Request)
    }
}

impl Store for Source {
    async fn site_rows(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowRow>, StoreError> {
        match self {
            Source::Influx(s) => s.site_rows(window, sites, from, to).await,
            Source::Archive(s) => s.site_rows(window, sites, from, to).await,
        }
    }

    async fn meter_rows(
        &self,
        window: &str,
        sites: &Sites,
        level: Option<u8>,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowRow>, StoreError> {
        match self {
            Source::Influx(s) => s.meter_rows(window, sites, level, from, to).await,
            Source::Archive(s) => s.meter_rows(window, sites, level, from, to).await,
        }
    }

    async fn site_sums(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> Result<Vec<SiteSum>, StoreError> {
        match self {
            Source::Influx(s) => s.site_sums(window, sites, from, to).await,
            Source::Archive(s) => s.site_sums(window, sites, from, to).await,
        }
    }

    async fn entries(&self, sites: &Sites) -> Result<Vec<Entry>, StoreError> {
        match self {
            Source::Influx(s) => s.entries(sites).await,
            Source::Archive(s) => s.entries(sites).await,
        }
    }
}
