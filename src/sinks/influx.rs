//! InfluxDB writer. (stub)
