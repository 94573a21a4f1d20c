//! Readings to `reading` lines (SCHEMA.md). (stub)
