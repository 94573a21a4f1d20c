//! Raw config. (stub)
