//! `emgate enter`'s path to the output: one entry written synchronously to
//! the configured InfluxDB (v1 or v2) or file sink, without the spool.
//!
//! Why not the spool: `enter` runs beside (or without) a gateway and must
//! say whether the entry is stored before it exits; a failure is reported
//! to the person entering it, who can retry.

use crate::config::{Config, OutputConfig};
use crate::sinks::file::FileSink;
use crate::sinks::influx::{WriteError, Writer, WriterError};

use super::{Entry, EntryError, EntryInput, validate};

/// Why `emgate enter` stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    /// The entry is invalid.
    #[error("{0}")]
    Invalid(#[from] EntryError),
    /// The InfluxDB writer cannot be built from the configuration.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The output refused or could not be reached.
    #[error("the entry was not stored: {0}")]
    Write(#[from] WriteError),
}

/// Validates `input` against `config` now and writes it to the configured
/// output; the stored entry on success.
///
/// # Errors
/// [`EnterError`]: an invalid entry (nothing written), or the output's error.
pub async fn enter(config: &Config, input: &EntryInput) -> Result<Entry, EnterError> {
    let entry = validate(input, config, jiff::Timestamp::now(), fastrand::u128(..))?;
    let mut line = Vec::with_capacity(256);
    entry.encode(&mut line);
    match &config.output {
        OutputConfig::Influx(cfg) => Writer::new(cfg)?.write(&line, 1).await?,
        OutputConfig::File(cfg) => {
            let sink = FileSink::new(&cfg.path);
            sink.write(&line).await?;
            sink.sync().await?;
        }
    }
    Ok(entry)
}
