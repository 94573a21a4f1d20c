//! `[[boilers]]` and `[boiler]`.
