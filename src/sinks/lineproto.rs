//! InfluxDB line protocol encoder. (stub: replaced by the real encoder)
