//! The command line: `latchkey serve | worker | migrate | demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{App, AppOptions};
use crate::config::Config;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Self-service customer portal with magic-link sign-in"
)]
pub struct Cli {
    /// Directory holding default.toml and {LATCHKEY_ENV}.toml.
    #[arg(
        long,
        env = "LATCHKEY_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web front (and, unless --no-workers or run_workers = false, the mail workers).
    Serve {
        /// Serve the web front only; the workers run elsewhere (`latchkey worker`).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run mail workers only (competing consumers on the queue) and the relay.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Load the demo storefront (idempotent) and exit.
    Demo,
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
}

/// Runs the command line; the binary's `main` is just this.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("latchkey: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(config.log_format, &config.log_level);
    let result = match cli.command.unwrap_or(Command::Serve { no_workers: false }) {
        Command::Serve { no_workers } => App::run(
            config,
            AppOptions {
                web: true,
                workers: no_workers.then_some(false),
                ..AppOptions::default()
            },
        )
        .map_err(|e| e.to_string()),
        Command::Worker => App::run(
            config,
            AppOptions {
                web: false,
                workers: Some(true),
                ..AppOptions::default()
            },
        )
        .map_err(|e| e.to_string()),
        Command::Migrate => one_shot(config, |store, _| async move {
            let applied = store.migrate().await.map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("The database is up to date.");
            } else {
                println!("Applied: {}", applied.join(", "));
            }
            Ok(())
        }),
        Command::Demo => one_shot(config, |store, _| async move {
            store.migrate().await.map_err(|e| e.to_string())?;
            let demo = store
                .load_demo(chrono::Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "Demo storefront `{}` is ready: customers {}.",
                demo.slug,
                demo.customers.join(" and ")
            );
            Ok(())
        }),
        Command::Config => {
            println!("{}", config.describe());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a short task against the database on a small runtime.
fn one_shot<F, Fut>(config: Config, f: F) -> Result<(), String>
where
    F: FnOnce(Store, Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let kind = config.database_kind().map_err(|e| e.to_string())?;
        let store = Store::open(&kind, 2).map_err(|e| e.to_string())?;
        f(store, config).await
    })
}
