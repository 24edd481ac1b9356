//! The harness the two benchmarks share, each piece defined once; each bench keeps only its
//! own scenarios, data and report tables.
//!
//! - [`settings`]: the knobs every bench reads from the environment, and the `LATCHKEY_*`
//!   variables passed on to the processes.
//! - [`database`]: the run's own PostgreSQL database and the clean-up of its queues.
//! - [`process`]: the `latchkey` processes (the release binary, configured by environment),
//!   and waiting for clients while watching the server.
//! - [`browser`]: cookie-keeping HTTP clients that sign in as a person does, and error tallies.
//! - [`stats`]: percentiles, rates, durations as text.
//! - [`cpu`]: CPU per process from `/proc`, and memory.
//! - [`machine`]: the machine and versions a run measured.
//! - [`report`]: `main`, and the report's parts every bench writes alike.

pub mod browser;
pub mod cpu;
pub mod database;
pub mod machine;
pub mod process;
pub mod report;
pub mod settings;
pub mod stats;

pub use browser::{Browser, ErrorTally};
pub use cpu::{CpuShares, Memory, cpu_sample, read_memory};
pub use database::{BenchDatabase, admin_client, tear_down};
pub use machine::MachineInfo;
pub use process::{BenchSetting, Launcher, Proc, RAISED_LIMITS, drive};
pub use report::{publish, write_disturbed, write_failures, write_settings};
pub use settings::{
    BenchEnv, env_counts, env_number, free_port, passed_through_settings, random_lower,
};
pub use stats::{Stats, ms, rate};
