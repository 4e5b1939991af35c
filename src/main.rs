//! The `labrun` command line. Only this crate prints; everything else returns data.

mod cli;
mod commands;
mod config;
mod maintain;
mod run;
mod shared;

use lab_engine::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("labrun: internal error (a bug in labrun, not in your file): {info}");
        eprintln!("please report it with the command you ran");
    }));
    let args = cli::normalise_args(std::env::args_os().collect());
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
