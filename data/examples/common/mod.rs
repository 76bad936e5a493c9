//! What the data examples share.

use std::fmt::Display;
use std::process::ExitCode;

/// The exit status of an example's `run`: success, or failure with the
/// error printed to stderr as `error: …`.
pub fn exit_code(result: Result<(), impl Display>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
