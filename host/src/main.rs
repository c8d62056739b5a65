//! `hsm-host`: the command line over the hsm-host library. Parsing and printing live in `cli`;
//! this file only maps the outcome to an exit code.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
