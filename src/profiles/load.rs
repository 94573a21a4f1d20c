//! Profile files. (stub)
