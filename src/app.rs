//! Running gateway. (stub)
