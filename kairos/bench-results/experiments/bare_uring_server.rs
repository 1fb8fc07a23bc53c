//! Experiment of kairos/BENCH.md section I, kept as source only (not built by the workspace: it
//! needs `tokio-uring`, which the project does not depend on). The token path plus one 4 KiB
//! `O_DIRECT | O_DSYNC` write per group of tokens, as `kairos/examples/bare_durable_server.rs`,
//! but the write goes through io_uring from a writer task on the server's only runtime thread
//! (`tokio_uring::start` runs a current-thread tokio runtime, on which the whole server runs):
//! no writer thread and no blocking. The writer task takes what has queued, yields to the
//! runtime until a yield brings no more tokens (at most the third argument, default 4), and
//! awaits the write. All of it is safe code: `tokio-uring`'s API is safe.
//!
//! To run it: `cargo add -p kairos --dev tokio-uring@0.5`, copy this file to `kairos/examples/`,
//! build it like the other harnesses and measure it as `kairos/examples/bare_durable_server.rs`
//! says. Results: `2026-11-26-I-uring.txt` next to this file.
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kairos_authz::{AuditError, AuditEvent, AuditLog, AuditMeta};
use tokio::sync::{mpsc, oneshot};
use tokio_uring::buf::BoundedBuf as _;

const BLOCK: usize = 4096;
const LOG_BYTES: u64 = 64 << 20;

#[derive(Debug)]
struct Bare {
    tx: mpsc::UnboundedSender<oneshot::Sender<bool>>,
}

#[async_trait]
impl AuditLog for Bare {
    async fn record(&self, _e: AuditEvent, _m: AuditMeta) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(tx).is_err() {
            return Err(AuditError::Unavailable("writer gone".into()));
        }
        if rx.await.unwrap_or(false) {
            Ok(())
        } else {
            Err(AuditError::Unavailable("write failed".into()))
        }
    }
    async fn is_revoked(&self, _jti: &str) -> Result<bool, AuditError> {
        Ok(false)
    }
}

async fn writer(
    path: PathBuf,
    mut rx: mpsc::UnboundedReceiver<oneshot::Sender<bool>>,
    rounds: usize,
) {
    let file = tokio_uring::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(&path)
        .await
        .expect("open");
    let mut buf: Vec<u8> = vec![0u8; 2 * BLOCK];
    let start = buf.as_ptr().align_offset(BLOCK);
    let mut offset = 0u64;
    let (mut groups, mut tokens) = (0u64, 0u64);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut seen = 0;
        for _ in 0..rounds {
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
            if batch.len() == seen {
                break;
            }
            seen = batch.len();
            tokio::task::yield_now().await;
        }
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        groups += 1;
        tokens += batch.len() as u64;
        if groups % 5000 == 0 {
            eprintln!(
                "groups {groups}, tokens per group {:.2}",
                tokens as f64 / groups as f64
            );
        }
        if offset + BLOCK as u64 > LOG_BYTES {
            offset = 0;
        }
        let (res, slice) = file
            .write_at(buf.slice(start..start + BLOCK), offset)
            .submit()
            .await;
        buf = slice.into_inner();
        offset += BLOCK as u64;
        let ok = matches!(res, Ok(n) if n == BLOCK);
        for r in batch {
            let _ = r.send(ok);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(data_dir), Some(listen)) = (args.next(), args.next()) else {
        anyhow::bail!("usage")
    };
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let data_dir = PathBuf::from(data_dir);
    let cfg = kairos::config::RawConfig::default()
        .validate(Some(listen.parse()?))
        .map_err(|e| anyhow::anyhow!("{}", e.0))?;
    let path = data_dir.join("bare-uring.log");
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)?;
        let mut raw = vec![0u8; (1 << 20) + BLOCK];
        let s = raw.as_ptr().align_offset(BLOCK);
        for _ in 0..(LOG_BYTES >> 20) {
            f.write_all(&raw[s..s + (1 << 20)])?;
        }
        f.sync_all()?;
        let _ = &mut raw;
    }
    tokio_uring::start(async move {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio_uring::spawn(writer(path, rx, rounds));
        let running = kairos::serve::start(&cfg, &data_dir, Arc::new(Bare { tx }), vec![]).await?;
        println!("bare uring: {}", running.state.settings().issuer);
        tokio::signal::ctrl_c().await?;
        running.stop().await;
        Ok(())
    })
}
