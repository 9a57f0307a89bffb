//! The commands: thin layers that turn parsed flags into calls on the stages and print what the
//! user reads. They import stages, never each other.

pub mod athena;
#[cfg(feature = "emulator")]
pub mod demo;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod export;
pub mod status;
pub mod verify;

use crate::job::Cancel;

/// Cancels `cancel` on the first Ctrl-C (the run stops at the next part boundary); a second
/// Ctrl-C ends the process at once with 130, as a terminal user expects.
pub(crate) fn cancel_on_ctrl_c(cancel: &Cancel) -> tokio::task::JoinHandle<()> {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("stopping at the next part boundary (Ctrl-C again to abort)...");
        cancel.cancel("interrupted");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    })
}
