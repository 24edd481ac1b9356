//! Test and benchmark tools.
