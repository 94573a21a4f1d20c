//! Sink task. (stub)
