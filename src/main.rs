//! The `labrun` command line. Only this crate prints; everything else returns data.

mod cli;
mod commands;
mod config;
mod maintain;
mod progress;
mod run;
mod shared;

use lab_engine::Exit;
use std::process::ExitCode;

/// `labrun cache ls | head` ends quietly when `head` has read enough, as `ls` and `cat`
/// do: every command but a run (and a Slurm worker) takes the default action on SIGPIPE.
/// A run ignores it, so that a reader that goes away never interrupts computing or
/// recording; its writes to standard output ignore their errors.
fn quiet_on_closed_pipes(args: &[std::ffi::OsString]) {
    let command = args.get(1).and_then(|a| a.to_str());
    if matches!(command, Some("run" | "slurm-worker")) {
        return;
    }
    // SAFETY: setting a signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("labrun: internal error (a bug in labrun, not in your file): {info}");
        eprintln!("please report it with the command you ran");
    }));
    let args = cli::normalise_args(std::env::args_os().collect());
    quiet_on_closed_pipes(&args);
    // Usage mistakes are user errors (exit 1); `--help` and `--version` succeed.
    let cli = match <cli::Cli as clap::Parser>::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::User } else { Exit::Success }.into();
        }
    };
    match std::panic::catch_unwind(|| commands::dispatch(cli)) {
        Ok(code) => code,
        Err(_) => Exit::Internal.into(),
    }
}
