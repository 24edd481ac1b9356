//! The harness the benchmarks share, each piece defined once; each bench keeps only its own
//! scenarios, data and report tables.
//!
//! - [`settings`]: the knobs every bench reads from the environment, and the `LATCHKEY_*`
//!   variables passed on to the processes.
//! - [`database`]: the run's own PostgreSQL database and the clean-up of its queues.
//! - [`process`]: the `latchkey` processes (the release binary, configured by environment),
//!   and waiting for clients while watching the server.
//! - [`browser`]: cookie-keeping HTTP clients that sign in as a person does, and error tallies.
//! - [`load`]: the sign-in load: bench accounts, browsers requesting links until told to stop,
//!   and waiting for their emails.
//! - [`rabbit_cluster`]: a RabbitMQ cluster of its own on loopback ports, for the cluster bench.
//! - [`stats`]: percentiles, rates, durations as text.
//! - [`cpu`]: CPU per process from `/proc`, and memory.
//! - [`machine`]: the machine and versions a run measured.
//! - [`report`]: `main`, and the report's parts every bench writes alike.

pub mod browser;
pub mod cpu;
pub mod database;
pub mod load;
pub mod machine;
pub mod process;
pub mod rabbit_cluster;
pub mod report;
pub mod settings;
pub mod stats;

pub use browser::{Browser, ErrorTally};
pub use cpu::{CpuShares, Memory, cpu_sample, read_memory};
pub use database::{BenchDatabase, admin_client, migrate_with_demo, tear_down};
pub use machine::MachineInfo;
pub use process::{BenchSetting, Launcher, Proc, RAISED_LIMITS, drive};
pub use report::{publish, write_disturbed, write_failures, write_settings};
// What only some of the benches use (each bench compiles this harness on its own).
#[allow(
    unused_imports,
    reason = "end_to_end and cluster drive sign-ins; operations does not"
)]
pub use load::{
    ACCOUNT_DIGITS, Accounts, AddressPlan, ClientLog, LinkSample, SIGN_IN, StopSignal,
    account_address, insert_accounts, merge_logs, prepare_data, sign_in_client, unknown_address,
    wait_for_inbox,
};
#[allow(
    unused_imports,
    reason = "operations and cluster write a section between markers"
)]
pub use report::write_marked_section;
pub use settings::{
    BenchEnv, env_counts, env_number, free_port, passed_through_settings, random_lower,
};
pub use stats::{Stats, ms, rate};
#[allow(
    unused_imports,
    reason = "only the cluster bench runs a pool of each and a cluster"
)]
pub use {cpu::cpu_sample_of, process::drive_all, rabbit_cluster::RabbitCluster};
