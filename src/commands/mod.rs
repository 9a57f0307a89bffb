//! The commands: thin layers that turn parsed flags into calls on the stages and print what the
//! user reads. They import stages, never each other.

pub mod athena;
#[cfg(feature = "emulator")]
pub mod demo;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod export;
pub mod feed;
pub mod permissions;
pub mod status;
pub mod verify;

use crate::error::Error;
use crate::job::Cancel;

/// The error of a run that stopped at a part boundary before its job was complete.
pub(crate) fn stopped(job_id: String, reason: Option<&str>) -> Error {
    Error::Stopped {
        job_id,
        message: format!(
            "stopped before it was complete ({}); nothing is lost: run the same command again to continue (exit 12; --exit-zero-when-stopped exits 0)",
            reason.unwrap_or("stopped")
        ),
    }
}

/// Cancels `cancel` on the first Ctrl-C or SIGTERM (what containers, ECS, Batch and Kubernetes
/// send): the run stops at the next part boundary, checkpoints and exits 12, resumable. A second
/// Ctrl-C ends the process at once with 130, as a terminal user expects.
pub(crate) fn cancel_on_signals(cancel: &Cancel) -> tokio::task::JoinHandle<()> {
    cancel_on_signals_saying(cancel, "stopping at the next part boundary")
}

/// As [`cancel_on_signals`], printing `what` happens next when the first signal arrives.
pub(crate) fn cancel_on_signals_saying(
    cancel: &Cancel,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let cancel = cancel.clone();
    tokio::spawn(async move {
        let mut terminate = signal(SignalKind::terminate()).ok();
        let sigterm = async {
            match terminate.as_mut() {
                Some(stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            interrupted = tokio::signal::ctrl_c() => match interrupted {
                Ok(()) => "interrupted",
                Err(_) => return,
            },
            _ = sigterm => "terminated by SIGTERM",
        };
        eprintln!("{what} ({reason}; Ctrl-C again to abort)...");
        cancel.cancel(reason);
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    })
}
