//! Latchkey
pub mod testkit;
