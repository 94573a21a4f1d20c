//! The `emgate` command line.
fn main() {}
