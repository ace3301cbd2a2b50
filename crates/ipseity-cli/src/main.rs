//! The `ipseity` command: parses arguments, runs one command, and maps its
//! outcome to an exit code (0 success/accept, 1 reject or not found, 2 error,
//! 3 possible duplicate enrolment, 4 needs review).
//!
//! This binary is thin: the work lives in the `ipseity-*` library crates. It is
//! the only crate that uses `anyhow`, `indicatif` or prints JSON.

// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

mod args;
mod chip_reader;
mod commands;
mod context;
mod error;
mod files;
mod manifest;
mod output;
mod policy;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::Cli;
use crate::output::Output;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::SUCCESS; // --help, --version
            }
            if std::env::args_os().any(|a| a == "--json") {
                let rendered = e.render().to_string();
                // The first paragraph, without clap's usage and help hints.
                let first: Vec<&str> = rendered
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                let message = first.join(" ");
                output::print_json_error("usage", message.trim_start_matches("error: "));
            }
            return ExitCode::from(error::ExitStatus::Error.code());
        }
    };
    let out = Output::new(cli.global.json);
    let result =
        context::Ctx::new(&cli.global, out).and_then(|ctx| commands::run(&ctx, &cli.command));
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let (code, status) = error::classify(&err);
            out.error(code, &error::message(&err));
            ExitCode::from(status.code())
        }
    }
}
