//! `emgate status`: the per-site and per-meter view of a running gateway,
//! fetched from its HTTP API and rendered as a terminal table.
