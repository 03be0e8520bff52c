//! Real redis-server (and Sentinel) processes for tests: Debian's binaries, free loopback
//! ports, a temporary directory each, bounded waits. Every process is killed by its own
//! child handle (its PID) when dropped, and its directory removed.
//!
//! libtest has no run-time skip, so a test that needs redis-server is `#[ignore]`d with the
//! reason: a plain `cargo test` lists it as "ignored, needs redis-server" (visible, never a
//! silent "ok"), and `cargo test -- --include-ignored` (what scripts/test.sh runs, after
//! installing redis-server) runs it, where a missing redis-server is a failure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const HINT: &str = "redis-server is not on the PATH (install it: apt-get install redis-server)";

/// Fails the test, with the install command, when redis-server or redis-cli is missing.
pub fn require_redis() {
    let found = |bin: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
    };
    assert!(found("redis-server") && found("redis-cli"), "{HINT}");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until `f` holds, for at most `limit`.
pub fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "dnastore-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A primary, its replica and three Sentinels watching it as `mymaster` (down-after
/// 400 ms), ready for a failover: the replica in sync, the Sentinels knowing it and each
/// other (hello every 2 s). `url` is the `redis+sentinel://` URL of the three.
pub struct SentinelSet {
    pub master: Server,
    pub replica: Server,
    pub sentinels: Vec<Server>,
    pub url: String,
}

impl SentinelSet {
    pub fn start() -> Self {
        let master = Server::start(&[]);
        let replica = Server::start(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let sentinels: Vec<Server> = (0..3).map(|_| Server::sentinel(master.port, 400)).collect();
        let limit = Duration::from_secs(15);
        wait_for(limit, "the replica in sync", || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        wait_for(
            limit,
            "the Sentinels know each other and the replica",
            || {
                sentinels.iter().all(|s| {
                    s.cli(&["SENTINEL", "replicas", "mymaster"])
                        .contains(&replica.port.to_string())
                        && s.cli(&["SENTINEL", "sentinels", "mymaster"])
                            .matches("name")
                            .count()
                            == 2
                })
            },
        );
        let nodes: Vec<String> = sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let url = format!("redis+sentinel://{}/mymaster", nodes.join(","));
        Self {
            master,
            replica,
            sentinels,
            url,
        }
    }
}

/// One redis-server (or Sentinel) we started.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    dir: TempDir,
    /// Extra arguments every redis-cli call needs (TLS, auth).
    pub cli_args: Vec<String>,
}

impl Server {
    /// A plain node on a free port with `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let mut s = Self {
            child: None,
            port,
            args: extra.iter().map(|s| s.to_string()).collect(),
            dir: TempDir::new("redis"),
            cli_args: vec![],
        };
        s.spawn();
        s
    }

    /// A Sentinel watching `master` under the name `mymaster` (quorum 2).
    pub fn sentinel(master_port: u16, down_after_ms: u32) -> Self {
        let port = free_port();
        let dir = TempDir::new("sentinel");
        let conf = dir.path("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds mymaster {down_after_ms}\n\
                 sentinel failover-timeout mymaster 2000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.0.display()
            ),
        )
        .unwrap();
        let mut s = Self {
            child: None,
            port,
            args: vec![conf.display().to_string(), "--sentinel".into()],
            dir,
            cli_args: vec![],
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let sentinel = self.args.iter().any(|a| a == "--sentinel");
        let mut cmd = Command::new("redis-server");
        if sentinel {
            cmd.args(&self.args);
        } else {
            let plain_port = if self.args.iter().any(|a| a == "--tls-port") {
                "0".to_string()
            } else {
                self.port.to_string()
            };
            cmd.args(["--port", &plain_port, "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "no", "--dir"])
                .arg(&self.dir.0)
                .args(&self.args);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(10), "redis-server listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Kills the process (by its PID, through its child handle) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process, by its PID: a SIGSTOPped server
    /// accepts connections (the kernel does) and answers nothing.
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args(["-s", signal, &c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -s {signal}");
        }
    }

    /// Starts again on the same port with the same arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning"])
            .args(&self.cli_args)
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn openssl(dir: &TempDir, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(&dir.0)
        .args(args)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<name>.crt`/`.key` in `dir`, made with openssl: a CA; with `signer`, a server certificate
/// for 127.0.0.1 (and localhost) that CA signed.
pub fn cert(dir: &TempDir, name: &str, signer: Option<&str>) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    match signer {
        None => {
            let subj = format!("/CN={name}");
            let mut a = vec![
                "req", "-x509", "-days", "1", "-subj", &subj, "-keyout", &key, "-out", &crt,
            ];
            a.extend(ec);
            openssl(dir, &a);
        }
        Some(ca) => {
            let csr = format!("{name}.csr");
            let mut a = vec![
                "req",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &key,
                "-out",
                &csr,
            ];
            a.extend(ec);
            openssl(dir, &a);
            std::fs::write(
                dir.path("ext.cnf"),
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            )
            .unwrap();
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "1",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_crt,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    &crt,
                ],
            );
        }
    }
}

/// A redis-server speaking TLS only, with a certificate of a CA made in `dir` (`ca.crt`,
/// what `redisCaFile` names); its redis-cli calls use TLS too.
pub fn tls_server(dir: &TempDir) -> Server {
    cert(dir, "ca", None);
    cert(dir, "server", Some("ca"));
    let p = |f: &str| dir.path(f).display().to_string();
    let port = free_port();
    let mut srv = Server::start_on(
        port,
        &[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    srv.cli_args = vec!["--tls".into(), "--cacert".into(), p("ca.crt")];
    srv
}
