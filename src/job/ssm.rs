//! The exported count in SSM Parameter Store, as an observer: absolute values from the
//! checkpoint (never read-modify-write), at most one PutParameter a second, the final value
//! retried a few times. A failing SSM never fails or corrupts the export.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ssm::types::ParameterType;
use tokio::sync::watch;

use super::checkpoint::Checkpoint;
use super::observer::{Committed, Observer};
use crate::aws::Failure;

/// Minimum spacing of PutParameter calls (the API's default throughput is low).
pub const SSM_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts at the final value (backoff 1 s, 2 s, 4 s); a miss is repaired by the next run.
const FINAL_ATTEMPTS: u32 = 4;

/// Publishes the exported count to one SSM parameter from a background task.
pub struct SsmCounter {
    sender: watch::Sender<u64>,
    /// Cuts the spacing wait short when the run ends, so the final value lands at once.
    finishing: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<bool>,
}

impl SsmCounter {
    /// Starts the publisher; the first value is written at once.
    pub fn start(config: &SdkConfig, name: String, initial: u64) -> SsmCounter {
        let client = aws_sdk_ssm::Client::new(config);
        let (sender, receiver) = watch::channel(initial);
        let finishing = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(publish(client, name, receiver, finishing.clone()));
        SsmCounter {
            sender,
            finishing,
            task,
        }
    }

    /// Records the latest absolute count (never read-modify-write).
    pub fn set(&self, count: u64) {
        self.sender.send_replace(count);
    }

    /// Writes the final value (or the last one set); returns whether SSM holds it.
    pub async fn close(self, count: Option<u64>) -> bool {
        if let Some(count) = count {
            self.sender.send_replace(count);
        }
        drop(self.sender);
        self.finishing.notify_one();
        self.task.await.unwrap_or(false)
    }
}

async fn put(client: &aws_sdk_ssm::Client, name: &str, value: u64) -> Result<(), Failure> {
    client
        .put_parameter()
        .name(name)
        .value(value.to_string())
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Failure::of(&e))
}

/// Writes each new value at most once per interval; after the sender closes, writes the final
/// value with a few retries. Returns whether the last value landed.
async fn publish(
    client: aws_sdk_ssm::Client,
    name: String,
    mut receiver: watch::Receiver<u64>,
    finishing: Arc<tokio::sync::Notify>,
) -> bool {
    let mut written: Option<u64> = None;
    loop {
        let value = *receiver.borrow_and_update();
        if written != Some(value) {
            match put(&client, &name, value).await {
                Ok(()) => written = Some(value),
                Err(failure) if failure.is_access_denied() => tracing::warn!(
                    "SSM {name}: PutParameter refused ({}); allow ssm:PutParameter on this parameter (`sechub-export permissions` with the export's flags prints the policy); the export goes on without its count",
                    failure.summary()
                ),
                Err(failure) => tracing::warn!(
                    "SSM {name}: PutParameter failed, will retry ({})",
                    failure.summary()
                ),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SSM_INTERVAL) => {}
            _ = finishing.notified() => break,
        }
        // Wait for a new value; after a failed write, retry at the next interval instead.
        let closed = if written == Some(*receiver.borrow()) {
            receiver.changed().await.is_err()
        } else {
            receiver.has_changed().is_err()
        };
        if closed {
            break;
        }
    }
    let last = *receiver.borrow();
    let mut delay = SSM_INTERVAL;
    for _ in 0..FINAL_ATTEMPTS {
        if written == Some(last) {
            return true;
        }
        match put(&client, &name, last).await {
            Ok(()) => written = Some(last),
            Err(failure) => {
                tracing::warn!(
                    "SSM {name}: final PutParameter failed ({})",
                    failure.summary()
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    written == Some(last)
}

#[async_trait]
impl Observer for SsmCounter {
    fn committed(&mut self, event: &Committed<'_>) {
        self.set(event.checkpoint.exported_count);
    }

    async fn finish(self: Box<Self>, done: Option<&Checkpoint>) {
        // On failure the publisher already holds the last committed count.
        if !(*self).close(done.map(|c| c.exported_count)).await {
            tracing::warn!("the SSM progress parameter could not be updated; it is set again from the checkpoint on the next run");
        }
    }
}
