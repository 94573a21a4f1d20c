//! Simulator. (stub)
