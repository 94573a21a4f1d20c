//! The binary's own modules: what the commands print and how they end
//! (exit codes). The library (`emgate`) does the work.

pub(crate) mod commands;
pub(crate) mod print;
