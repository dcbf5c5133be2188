//! Group commit for Raft log appends. Appends are written without waiting for the disk; one
//! thread fsyncs the WAL for every append that arrived meanwhile and only then tells openraft
//! they are flushed. With many groups appending at once (a store's RGs) or openraft handing
//! over many entries per append (the MC's catalog under load), one fsync covers them all.

use std::sync::mpsc;

use openraft::RaftTypeConfig;
use openraft::storage::IOFlushed;

use crate::wire::io_err;

/// Fsyncs the WAL on behalf of waiting appends, many at a time.
pub struct WalSyncer<C: RaftTypeConfig> {
    tx: Option<mpsc::Sender<IOFlushed<C>>>,
}

impl<C: RaftTypeConfig> Clone for WalSyncer<C> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<C: RaftTypeConfig> WalSyncer<C> {
    /// Starts the syncing thread, `name`d for stack dumps. `flush` fsyncs the WAL; it must not
    /// own the database (hold it weakly): this detached thread must never be the one that
    /// closes it, which at process exit can touch destroyed statics.
    pub fn start(name: &str, flush: impl Fn() -> std::io::Result<()> + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<IOFlushed<C>>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    let result = flush();
                    for waiter in waiters {
                        waiter.io_completed(match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io_err(e)),
                        });
                    }
                }
            })
            .expect("spawn the WAL sync thread");
        Self { tx: Some(tx) }
    }

    /// Appends count as flushed once written: only for benchmarks that say so.
    pub fn unsynced() -> Self {
        Self { tx: None }
    }

    /// Tells openraft the append is flushed once the next fsync has run.
    pub fn after_sync(&self, callback: IOFlushed<C>) {
        match &self.tx {
            Some(tx) => {
                if let Err(mpsc::SendError(callback)) = tx.send(callback) {
                    callback.io_completed(Err(io_err("WAL syncer stopped")));
                }
            }
            None => callback.io_completed(Ok(())),
        }
    }
}
