//! A bench's run from `main` to its exit code, and the parts of the report every bench
//! writes alike: failures, the warning about other busy processes, the settings that differ
//! from the defaults, and `BENCHMARKS.md` itself.

use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::BenchSetting;

/// Runs `run` on a multi-threaded Tokio runtime: success when it answers `Ok(true)`; a
/// failure, said on stderr under the bench's `name`, otherwise.
///
/// `cargo bench` passes `--bench`; runners that build and run every target (`cargo test
/// --all-targets`, `cargo nextest run --all-targets`) do not: nothing to do then.
pub fn main<F>(name: &str, run: impl FnOnce() -> F) -> ExitCode
where
    F: Future<Output = Result<bool>>,
{
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start a Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\n{name}: FAILED (see the report above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\n{name}: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `BENCHMARKS.md` at the top of the repository.
pub fn benchmarks_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md")
}

/// Prints the report; with `write_file`, puts it into `BENCHMARKS.md` with `write` (each
/// bench owns its part of the file) and says so.
pub fn publish(text: &str, write_file: bool, write: impl FnOnce(&str) -> Result<()>) -> Result<()> {
    println!("\n{text}");
    if write_file {
        write(text)?;
        println!("(written to {})", benchmarks_file().display());
    }
    Ok(())
}

/// "**RUN FAILED:**" and the failures, when there are any.
pub fn write_failures(s: &mut String, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let _ = writeln!(s, "**RUN FAILED:**\n");
    for f in failures {
        let _ = writeln!(s, "- **{f}**");
    }
    s.push('\n');
}

/// The warning that other processes took CPU during the named measurements, when any did.
pub fn write_disturbed(s: &mut String, disturbed: &[String]) {
    if !disturbed.is_empty() {
        let _ = writeln!(
            s,
            "**Warning: other processes took CPU during {}; those figures are low.**\n",
            disturbed.join("; ")
        );
    }
}

/// "Settings that differ from the compiled-in defaults": the bench's own, in groups (with
/// the processes a group is for, e.g. " for `latchkey worker`", or ""), each replaced by the
/// invoker's value where it gave one, then the invoker's other overrides.
pub fn write_settings(
    s: &mut String,
    groups: &[(&[BenchSetting], &str)],
    overrides: &[(String, String)],
) {
    let _ = writeln!(s, "Settings that differ from the compiled-in defaults:\n");
    for (settings, scope) in groups {
        for (key, value, why) in *settings {
            match overrides.iter().find(|(k, _)| k == key) {
                Some((_, given)) => {
                    let _ = writeln!(
                        s,
                        "- `{key}={given}`{scope} (from the invoking environment; the bench's own: {value}, {why})"
                    );
                }
                None => {
                    let _ = writeln!(s, "- `{key}={value}`{scope} ({why})");
                }
            }
        }
    }
    for (key, value) in overrides {
        let bench_own = groups
            .iter()
            .any(|(settings, _)| settings.iter().any(|(k, _, _)| k == key));
        if !bench_own {
            let _ = writeln!(s, "- `{key}={value}` (from the invoking environment)");
        }
    }
}

/// Writes `section` into `BENCHMARKS.md` between the lines `start` and `end` (which `section`
/// begins and ends with), replacing what was there; the first time, just above `## Results`
/// (which `end_to_end` replaces from there to the end), or at the end of the file. Everything
/// else in the file is kept as it is.
#[allow(dead_code, reason = "end_to_end replaces its part otherwise")]
pub fn write_marked_section(start: &str, end: &str, section: &str) -> Result<()> {
    use anyhow::Context as _;
    let path = benchmarks_file();
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let block = section.trim_end();
    let updated = match (existing.find(start), existing.find(end)) {
        (Some(from), Some(to)) if to > from => format!(
            "{}{block}{}",
            &existing[..from],
            &existing[to + end.len()..]
        ),
        _ => match existing.find("\n## Results") {
            Some(at) => format!("{}{block}\n\n{}", &existing[..at + 1], &existing[at + 1..]),
            None if existing.trim().is_empty() => format!("# Benchmarks\n\n{block}\n"),
            None => format!("{}\n\n{block}\n", existing.trim_end()),
        },
    };
    std::fs::write(&path, updated).with_context(|| format!("write {}", path.display()))
}
