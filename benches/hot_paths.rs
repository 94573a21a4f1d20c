//! Benchmarks of the hot paths. (stub)
fn main() {}
