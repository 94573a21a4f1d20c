//! The streaming join of a boiler's inputs per window (module doc of
//! [`super`]).
