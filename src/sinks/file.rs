//! File sink. (stub)
