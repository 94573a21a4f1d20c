//! Spool benchmarks (being written).
fn main() {}
