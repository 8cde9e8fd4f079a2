//! Harness for Berth's end-to-end suites.
//!
//! Every suite drives the *built* `berth` binary as a user would: [`BerthServer::start`] spawns
//! `berth up` on a free loopback port with a throw-away data directory, a fixed account id and a
//! random root key, waits until `GET /_berth/health` answers 200, and kills the process when
//! dropped. Clients come ready-made: [`BerthServer::ecs_client`] (aws-sdk-ecs),
//! [`BerthServer::aws_cli`] (the `aws` CLI from PyPI) and [`BerthServer::raw`] for requests no
//! real client would send (unsigned, wrongly signed, stale, malformed).
//!
//! Where the binary comes from: `BERTH_BIN` if set, else `berth` in the profile directory of
//! the running test executable (`<target>/<profile>/deps/<test>` → `<target>/<profile>/berth`).
//! `cargo test` does not build another package's binary for this crate, so build it first
//! (`scripts/test` does): `cargo build -p berth`.
//!
//! Where the CLI comes from: `BERTH_AWS_CLI` if set, else `aws` on `PATH`. The AWS CLI v2
//! (for what only v2 has, such as `aws logs tail`): `BERTH_AWS_CLI_V2`, else the bundle
//! `scripts/test` unpacks into `~/.cache/berth/awscli-v2`.

// This crate exists only to run tests. A failed expectation panics with a message, which is
// how a test fails, so `unwrap`/`expect` are the intended failure mode here, not shortcuts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod raw;

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::timeout::TimeoutConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use tempfile::TempDir;

pub use raw::{RawRequest, RawResponse, SigningParams};

/// The account id every harness-started server uses unless the builder says otherwise.
pub const ACCOUNT_ID: &str = "123456789012";
/// The region clients use unless a test picks another.
pub const REGION: &str = "us-east-1";
/// How long a server gets to answer `GET /_berth/health`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one raw HTTP exchange.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the `berth` binary is: `BERTH_BIN`, else next to the running executable's profile dir.
pub fn berth_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("BERTH_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("BERTH_BIN={} is not a file", bin.display()))
        };
    }
    let candidate = profile_dir()?.join("berth");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "the berth binary is not at {}; build it first with `cargo build -p berth` (same \
             CARGO_TARGET_DIR and profile as the tests) or point BERTH_BIN at it",
            candidate.display()
        ))
    }
}

/// `<target>/<profile>` of the running test or bench executable.
pub fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent", exe.display()))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The `aws` CLI to run: `BERTH_AWS_CLI`, else `aws` on `PATH`.
pub fn aws_cli_path() -> OsString {
    std::env::var_os("BERTH_AWS_CLI")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "aws".into())
}

/// The AWS CLI v2 to run: `BERTH_AWS_CLI_V2`, else `~/.cache/berth/awscli-v2/dist/aws` (where
/// `scripts/test` unpacks it from PyPI's `aws-cdk-asset-awscli-v2`). Panics if neither exists.
pub fn aws_cli_v2_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_AWS_CLI_V2").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp/.cache"));
    let candidate = cache.join("berth/awscli-v2/dist/aws");
    assert!(
        candidate.is_file(),
        "the AWS CLI v2 is not at {}: run scripts/test (it unpacks it) or set BERTH_AWS_CLI_V2",
        candidate.display()
    );
    candidate
}

/// Random bytes from the kernel.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// Python that defines `body_text(b)`: a `records` or `trail_events` body read with Python's
/// `sqlite3` as the JSON text it holds. Berth stores long bodies LZ4-compressed (a block
/// behind four little-endian bytes: the length, and in the top 4 bits the dictionary the
/// block refers into, `berth-store`'s `compress.rs`) and short ones as text; tests that look
/// into the store prepend this to their script. (A text body written back is read as it is.)
pub const PY_BODY_TEXT: &str = concat!(
    "\
DICTIONARIES = {0: b'', 1: open(r'",
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/berth-store/src/dictionary-1.txt', 'rb').read()}
def body_text(b):
    if isinstance(b, str):
        return b
    head = int.from_bytes(b[:4], 'little')
    dictionary = DICTIONARIES[head >> 28]
    src, out, i = b[4:], bytearray(dictionary), 0
    def length(n, i):
        if n == 15:
            while True:
                x = src[i]; i += 1; n += x
                if x != 255:
                    break
        return n, i
    while i < len(src):
        token = src[i]; i += 1
        n, i = length(token >> 4, i)
        out += src[i:i + n]; i += n
        if i >= len(src):
            break
        offset = src[i] | (src[i + 1] << 8); i += 2
        n, i = length(token & 15, i)
        for _ in range(n + 4):
            out.append(out[-offset])
    return out[len(dictionary):].decode()
"
);

/// A random string of `len` characters drawn from `alphabet` (at most 256 symbols).
pub fn random_string(alphabet: &[u8], len: usize) -> String {
    assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>() {
            // Rejection sampling keeps the distribution uniform.
            let limit = 256 - (256 % alphabet.len());
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// A root-looking access key id: `AKIA` and 16 characters of `[A-Z2-7]`.
pub fn random_access_key_id() -> String {
    format!(
        "AKIA{}",
        random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    )
}

/// A 40-character secret from AWS's alphabet (including `+` and `/`).
pub fn random_secret_access_key() -> String {
    random_string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    )
}

/// A unique lowercase name for a test resource: `prefix-` and 10 random characters.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 10)
    )
}

fn free_loopback_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// How a harness server is started. Obtain one with [`BerthServer::builder`].
#[derive(Clone, Debug)]
pub struct BerthBuilder {
    bin: Option<PathBuf>,
    subcommand: String,
    account_id: String,
    access_key_id: String,
    secret_access_key: String,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    ready_timeout: Duration,
}

impl Default for BerthBuilder {
    fn default() -> Self {
        Self {
            bin: None,
            subcommand: "up".to_owned(),
            account_id: ACCOUNT_ID.to_owned(),
            access_key_id: random_access_key_id(),
            secret_access_key: random_secret_access_key(),
            args: Vec::new(),
            envs: Vec::new(),
            ready_timeout: READY_TIMEOUT,
        }
    }
}

impl BerthBuilder {
    /// The binary to run (default: [`berth_bin`]).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// `up` (default) or `server`.
    pub fn subcommand(mut self, subcommand: &str) -> Self {
        subcommand.clone_into(&mut self.subcommand);
        self
    }

    pub fn account_id(mut self, account_id: &str) -> Self {
        account_id.clone_into(&mut self.account_id);
        self
    }

    /// The root key pair to give the server (default: random).
    pub fn root_key(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        access_key_id.clone_into(&mut self.access_key_id);
        secret_access_key.clone_into(&mut self.secret_access_key);
        self
    }

    /// An extra command-line argument, after the harness's own.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the server process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the server and waits until it is ready; panics (with the server's stderr) if it
    /// exits or does not become ready within the timeout.
    pub fn start(self) -> BerthServer {
        let bin = match &self.bin {
            Some(bin) => bin.clone(),
            None => berth_bin().unwrap_or_else(|e| panic!("{e}")),
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).expect("create the data directory");
        let mut server = BerthServer {
            cfg: self,
            bin,
            dir: Some(dir),
            data_dir,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            child: None,
            starts: 0,
        };
        // Picking a free port and binding it are two steps, so another process can win the
        // port in between; try a few ports before giving up.
        let mut last_err = String::new();
        for _ in 0..5 {
            server.addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_loopback_port()));
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::AddrInUse(msg)) => last_err = msg,
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("berth could not bind a loopback port after 5 tries: {last_err}");
    }
}

enum StartError {
    AddrInUse(String),
    Failed(String),
}

/// A running `berth up` (or `berth server`) owned by a test. Killed on drop.
pub struct BerthServer {
    cfg: BerthBuilder,
    bin: PathBuf,
    /// `Some` until drop; holds `data/`, `berth.stdout`, `berth.stderr`, CLI config files.
    dir: Option<TempDir>,
    data_dir: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
    starts: u32,
}

impl BerthServer {
    /// Starts `berth sim`: `instances` SIMULATED container instances of `cluster` (no
    /// process runs; each reports its tasks RUNNING 50 ms after it sees them, and reads its
    /// changes at most every 100 ms), signed with this server's root key. The caller kills it.
    pub fn spawn_sim(&self, cluster: &str, instances: u32) -> Child {
        Command::new(berth_bin().expect("the berth binary"))
            .args(["sim", "--cluster", cluster, "--instances"])
            .arg(instances.to_string())
            .args([
                "--transition-delay-ms",
                "50",
                "--min-poll-interval-ms",
                "100",
            ])
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", self.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", self.secret_access_key())
            .env("AWS_REGION", REGION)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start berth sim")
    }

    /// `berth up` with the defaults: account [`ACCOUNT_ID`], a random root key, free port.
    pub fn start() -> Self {
        Self::builder().start()
    }

    pub fn builder() -> BerthBuilder {
        BerthBuilder::default()
    }

    fn root_dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(TempDir::path)
            .expect("the temporary directory lives until drop")
    }

    fn stdout_path(&self) -> PathBuf {
        self.root_dir().join("berth.stdout")
    }

    fn stderr_path(&self) -> PathBuf {
        self.root_dir().join("berth.stderr")
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        self.starts += 1;
        let open_log = |path: PathBuf, starts: u32| {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            writeln!(f, "----- berth-e2e: start #{starts} -----").expect("write a log marker");
            f
        };
        let stdout = open_log(self.stdout_path(), self.starts);
        let stderr = open_log(self.stderr_path(), self.starts);
        let stderr_len_before = fs::metadata(self.stderr_path()).map_or(0, |m| m.len());

        let mut cmd = Command::new(&self.bin);
        cmd.arg(&self.cfg.subcommand)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--account-id")
            .arg(&self.cfg.account_id)
            .arg("--root-access-key-id")
            .arg(&self.cfg.access_key_id)
            .arg("--root-secret-access-key")
            .arg(&self.cfg.secret_access_key)
            .args(&self.cfg.args)
            .env_remove("BERTH_ACCOUNT_ID")
            .env_remove("BERTH_ROOT_ACCESS_KEY_ID")
            .env_remove("BERTH_ROOT_SECRET_ACCESS_KEY")
            .envs(self.cfg.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Failed(format!("spawn {}: {e}", self.bin.display())))?;
        self.child = Some(child);

        let deadline = Instant::now() + self.cfg.ready_timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("poll the berth process"))
            {
                self.child = None;
                let log = fs::read(self.stderr_path()).unwrap_or_default();
                let new_part =
                    String::from_utf8_lossy(log.get(stderr_len_before as usize..).unwrap_or(&log))
                        .into_owned();
                let msg = format!(
                    "berth {} exited with {status} before it was ready (listen {}); stderr:\n{new_part}",
                    self.cfg.subcommand, self.addr
                );
                let lower = new_part.to_ascii_lowercase();
                return Err(
                    if lower.contains("address already in use") || lower.contains("addrinuse") {
                        StartError::AddrInUse(msg)
                    } else {
                        StartError::Failed(msg)
                    },
                );
            }
            if let Ok(resp) = raw::send(
                self.addr,
                &RawRequest::new("GET", "/_berth/health"),
                Duration::from_secs(2),
            ) && resp.status == 200
            {
                // Another test's server may have won the port between picking and binding it:
                // only our own process counts as ready.
                let pid = serde_json::from_slice::<serde_json::Value>(&resp.body)
                    .ok()
                    .and_then(|v| v["pid"].as_u64());
                let ours = self.child.as_ref().map(|c| u64::from(c.id()));
                if pid.is_none() || pid == ours {
                    return Ok(());
                }
                self.kill9();
                return Err(StartError::AddrInUse(format!(
                    "{} is served by another berth (pid {pid:?})",
                    self.addr
                )));
            }
            if Instant::now() > deadline {
                self.kill9();
                return Err(StartError::Failed(format!(
                    "berth {} did not answer 200 on GET /_berth/health within {:?} (listen {}); \
                     stderr:\n{}",
                    self.cfg.subcommand,
                    self.cfg.ready_timeout,
                    self.addr,
                    self.stderr()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`, the `Host` header clients send.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn account_id(&self) -> &str {
        &self.cfg.account_id
    }

    pub fn access_key_id(&self) -> &str {
        &self.cfg.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.cfg.secret_access_key
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the server wrote to stderr so far (all starts).
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Everything the server wrote to stdout so far (all starts).
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// The `<data-dir>/env` file written on first start.
    pub fn env_file(&self) -> String {
        let path = self.data_dir.join("env");
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The root credentials.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            self.access_key_id(),
            self.secret_access_key(),
            None,
            None,
            "berth-e2e",
        )
    }

    /// An aws-sdk-ecs config for this server with the root credentials, no retries (tests see
    /// exactly what the server answered) and a 30 s operation timeout.
    pub fn ecs_config(&self, region: &str) -> aws_sdk_ecs::config::Builder {
        ecs_config_for(&self.endpoint(), region, self.credentials())
    }

    /// An aws-sdk-ecs client for this server with the root credentials.
    pub fn ecs_client(&self, region: &str) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::from_conf(self.ecs_config(region).build())
    }

    /// An aws-sdk-ecs client for this server with other credentials.
    pub fn ecs_client_with_keys(
        &self,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> aws_sdk_ecs::Client {
        let creds = Credentials::new(access_key_id, secret_access_key, None, None, "berth-e2e");
        aws_sdk_ecs::Client::from_conf(ecs_config_for(&self.endpoint(), region, creds).build())
    }

    /// The `aws` CLI command for this server: `--endpoint-url`, `--region`, `--output json`,
    /// the root credentials in the environment, and no user configuration or profile.
    pub fn aws_cli_command(&self, region: &str, args: &[&str]) -> Command {
        self.cli_command(aws_cli_path(), region, args)
    }

    /// The same as [`Self::aws_cli_command`] with the AWS CLI v2 ([`aws_cli_v2_path`]).
    pub fn aws_cli_v2_command(&self, region: &str, args: &[&str]) -> Command {
        self.cli_command(aws_cli_v2_path().into(), region, args)
    }

    fn cli_command(&self, program: OsString, region: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--endpoint-url")
            .arg(self.endpoint())
            .arg("--region")
            .arg(region)
            .arg("--output")
            .arg("json")
            .args(args)
            .stdin(Stdio::null());
        for var in [
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_ECS",
            "AWS_CA_BUNDLE",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            cmd.env_remove(var);
        }
        let root = self.root_dir();
        cmd.env("AWS_ACCESS_KEY_ID", self.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", self.secret_access_key())
            .env("AWS_DEFAULT_REGION", region)
            .env("AWS_REGION", region)
            // Neither the developer's ~/.aws nor an instance metadata service may leak in.
            .env("AWS_CONFIG_FILE", root.join("aws-cli-config-absent"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                root.join("aws-cli-credentials-absent"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // One attempt: a test must see the server's own answer, not a retried one.
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", "");
        cmd
    }

    /// Runs the `aws` CLI against this server (see [`Self::aws_cli_command`]).
    pub fn aws_cli(&self, region: &str, args: &[&str]) -> Output {
        let mut cmd = self.aws_cli_command(region, args);
        cmd.output().unwrap_or_else(|e| {
            panic!(
                "run {:?}: {e} (install awscli, or set BERTH_AWS_CLI; scripts/test does both)",
                aws_cli_path()
            )
        })
    }

    /// Runs the CLI, asserts success and parses stdout as JSON (`Null` when it is empty, as
    /// for operations without output).
    pub fn aws_cli_json(&self, region: &str, args: &[&str]) -> serde_json::Value {
        let out = self.aws_cli(region, args);
        cli_json(&out, args)
    }

    /// Runs the CLI, asserts that it failed with the AWS error `code`, returns stderr.
    pub fn aws_cli_error(&self, region: &str, args: &[&str], code: &str) -> String {
        let out = self.aws_cli(region, args);
        assert_cli_error(&out, code, args)
    }

    /// Runs `berth <args>` with `AWS_ENDPOINT_URL`, the root keys and `AWS_REGION` in the
    /// environment (as `berth reset` expects) and returns its output.
    pub fn berth_command(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", self.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", self.secret_access_key())
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", self.bin.display()))
    }

    /// `berth reset`: wipes the account's resources; panics if it fails.
    pub fn reset(&self) {
        let out = self.berth_command(&["reset"]);
        assert!(
            out.status.success(),
            "berth reset failed with {}:\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends a request as is (no signing) and returns the response; panics on I/O errors.
    pub fn raw(&self, req: &RawRequest) -> RawResponse {
        raw::send(self.addr, req, RAW_TIMEOUT)
            .unwrap_or_else(|e| panic!("{} {} to {}: {e}", req.method, req.path, self.addr))
    }

    /// Signing parameters for the root key, service `ecs`, signed now.
    pub fn signing_params<'a>(&'a self, region: &'a str) -> SigningParams<'a> {
        SigningParams::ecs(self.access_key_id(), self.secret_access_key(), region)
    }

    /// A correctly signed ECS (AWS JSON 1.1) call with a body of your choice (which need not
    /// be valid JSON), signed by root.
    pub fn ecs_raw(&self, region: &str, operation: &str, body: &str) -> RawResponse {
        let req = RawRequest::ecs(operation, body).sign(&self.host(), &self.signing_params(region));
        self.raw(&req)
    }

    /// The id of the account's default subnet in `<REGION>a` (EC2's DescribeSubnets, signed
    /// by root): what the awsvpc tasks of the suites run in. Asked each time, since
    /// `berth reset` makes a new default network.
    pub fn default_subnet(&self) -> String {
        let body = format!(
            "Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=default-for-az&Filter.1.Value.1=true&Filter.2.Name=availability-zone&Filter.2.Value.1={REGION}a"
        );
        let req = RawRequest::new("POST", "/")
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.into_bytes())
            .sign(&self.host(), &self.signing_params(REGION).service("ec2"));
        let resp = self.raw(&req);
        let xml = resp.text();
        assert_eq!(resp.status, 200, "DescribeSubnets: {xml}");
        let start = xml.find("<subnetId>").expect("a default subnet") + "<subnetId>".len();
        let end = xml[start..].find("</subnetId>").expect("a closed subnetId") + start;
        xml[start..end].to_string()
    }

    /// `awsvpcConfiguration={subnets=[<default subnet>]}` for the CLI's
    /// `--network-configuration`.
    pub fn cli_network(&self) -> String {
        format!(
            "awsvpcConfiguration={{subnets=[{}]}}",
            self.default_subnet()
        )
    }

    /// An awsvpc network configuration in the default subnet, for aws-sdk-ecs calls.
    pub fn sdk_network(&self) -> aws_sdk_ecs::types::NetworkConfiguration {
        aws_sdk_ecs::types::NetworkConfiguration::builder()
            .awsvpc_configuration(
                aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                    .subnets(self.default_subnet())
                    .build()
                    .expect("subnets are set"),
            )
            .build()
    }

    /// Kills the server with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's Child::kill sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to 15 s for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_and_wait("TERM")
    }

    /// Sends SIGINT (Ctrl-C) and waits up to 15 s for the process to exit.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.signal_and_wait("INT")
    }

    fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("the server is not running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", child.id());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("poll the berth process") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berth did not exit within 15 s of SIG{signal}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again (after [`Self::kill9`] or [`Self::terminate`]) with the same
    /// data directory, port, account and keys, and waits until it is ready.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        // The old listener is gone once the process is reaped, but give the kernel a moment in
        // case the port is still held.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(StartError::AddrInUse(msg)) if Instant::now() < deadline => {
                    let _ = msg;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(StartError::AddrInUse(msg) | StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
    }

    /// `kill -9` and start again on the same data directory, port and keys.
    pub fn restart(&mut self) {
        self.kill9();
        self.start_again();
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll the berth process").is_none(),
            None => false,
        }
    }
}

/// Everything the tests that run real containers need: root, runc and busybox-static.
///
/// Returns `false` (after printing why) when the process is not root, so such a test can
/// return early on a developer's machine; CI runs as root and never skips. A missing `runc` or
/// `/bin/busybox` (Debian's busybox-static) is a broken setup, not a reason to skip: it panics.
pub fn containers_or_skip(test: &str) -> bool {
    if !is_root() {
        eprintln!("skipping {test}: running real containers needs root (run the suite as root)");
        return false;
    }
    let runc = Command::new("runc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        runc.is_ok_and(|s| s.success()),
        "{test}: runc is missing (apt-get install -y runc)"
    );
    assert!(
        Path::new("/bin/busybox").is_file(),
        "{test}: /bin/busybox is missing (apt-get install -y busybox-static)"
    );
    true
}

/// Whether this process runs as root (effective uid 0), from `/proc/self/status`.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The busybox-static test image (`tests/images/make-busybox-image.sh`) as a `docker save`
/// tarball tagged `busybox:latest`, built once per test process into the profile directory.
pub fn busybox_image_tar() -> PathBuf {
    static TAR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TAR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/make-busybox-image.sh");
        let dir = profile_dir().unwrap_or_else(|e| panic!("{e}"));
        let tmp = dir.join(format!("berth-e2e-busybox.{}.tar", std::process::id()));
        let out = Command::new("sh")
            .arg(&script)
            .arg(&tmp)
            .arg("busybox:latest")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let path = dir.join("berth-e2e-busybox.tar");
        fs::rename(&tmp, &path).expect("move the test image into place");
        path
    })
    .clone()
}

/// `berth image load --data-dir <data_dir> <tar>`; panics if it fails.
pub fn load_image_into(bin: &Path, data_dir: &Path, tar: &Path) {
    let out = Command::new(bin)
        .arg("image")
        .arg("load")
        .arg("--data-dir")
        .arg(data_dir)
        .arg(tar)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} image load: {e}", bin.display()));
    assert!(
        out.status.success(),
        "berth image load {} failed with {}:\nstdout: {}\nstderr: {}",
        tar.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGKILLs every process whose command line mentions `dir` (the shims of containers whose
/// state lives there) and every container process recorded under it (`container.pid`), by
/// PID; then unmounts the container root filesystems under `dir` and removes the task cgroups
/// named by those containers. Leaves nothing running after a test.
pub fn kill_processes_under(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    if needle.len() < 8 {
        return;
    }
    let kill = |pid: u32| {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let me = std::process::id();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(&needle)
            {
                kill(pid);
            }
        }
    }
    // Container directories: `<...>/containers/<task id>-<container name>/container.pid`.
    let mut task_ids = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if path.join("container.pid").is_file() || path.join("shim.json").is_file() {
                if let Some(pid) = fs::read_to_string(path.join("container.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok())
                {
                    kill(pid);
                }
                if let Some(task) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split('-').next())
                    .filter(|t| t.len() == 32)
                {
                    task_ids.push(task.to_owned());
                }
            } else if depth < 4 && !path.ends_with("rootfs") && !path.ends_with("images") {
                stack.push((path, depth + 1));
            }
        }
    }
    if let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") {
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(needle.as_str()))
            .collect();
        points.sort_unstable_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(p)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    task_ids.sort();
    task_ids.dedup();
    std::thread::sleep(Duration::from_millis(100));
    if let Ok(controllers) = fs::read_dir("/sys/fs/cgroup") {
        for c in controllers.flatten() {
            for id in &task_ids {
                remove_cgroup_tree(&c.path().join("berth").join(id));
            }
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// PIDs of the processes whose command line contains `marker` (for a unique marker argument
/// a test gave its container).
pub fn pids_with_marker(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|a| a.contains(marker))
        {
            pids.push(pid);
        }
    }
    pids
}

impl BerthServer {
    /// `berth image load` of `tar` into this server's data directory (its image store is
    /// `<data-dir>/images`, shared with the running server).
    pub fn load_image(&self, tar: &Path) {
        load_image_into(&self.bin, &self.data_dir, tar);
    }

    /// Starts `berth agent` for `cluster` against this server (see [`BerthAgent`]).
    pub fn start_agent(&self, cluster: &str, availability_zone: &str) -> BerthAgent {
        BerthAgent::start(self, cluster, availability_zone)
    }
}

/// A `berth agent` process bound to a harness server, with its own data directory. Killed
/// (SIGKILL) on drop, together with the shims and containers it left running.
pub struct BerthAgent {
    bin: PathBuf,
    dir: Option<TempDir>,
    data_dir: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    child: Option<Child>,
    starts: u32,
}

impl BerthAgent {
    /// Spawns `berth agent --endpoint … --cluster … --data-dir … --availability-zone …` with
    /// the server's root key in the environment. Does not wait for registration.
    pub fn start(server: &BerthServer, cluster: &str, availability_zone: &str) -> Self {
        Self::start_with(server, cluster, availability_zone, &[])
    }

    /// As [`Self::start`], with `extra` arguments after the others (e.g. `--capacity-provider
    /// NAME`, `--gpus 2`).
    pub fn start_with(
        server: &BerthServer,
        cluster: &str,
        availability_zone: &str,
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-agent-")
            .tempdir()
            .expect("create a temporary directory");
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).expect("create the agent data directory");
        let args: Vec<OsString> = [
            "agent".into(),
            "--endpoint".into(),
            server.endpoint().into(),
            "--cluster".into(),
            cluster.into(),
            "--data-dir".into(),
            data_dir.clone().into(),
            "--availability-zone".into(),
            availability_zone.into(),
        ]
        .into_iter()
        .chain(extra.iter().map(OsString::from))
        .collect();
        let envs: Vec<(OsString, OsString)> = vec![
            ("AWS_ACCESS_KEY_ID".into(), server.access_key_id().into()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                server.secret_access_key().into(),
            ),
            ("AWS_REGION".into(), REGION.into()),
        ];
        let mut agent = BerthAgent {
            bin: server.bin().to_path_buf(),
            dir: Some(dir),
            data_dir,
            args,
            envs,
            child: None,
            starts: 0,
        };
        agent.spawn();
        agent
    }

    fn root_dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(TempDir::path)
            .expect("the temporary directory lives until drop")
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let path = self.root_dir().join("agent.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        writeln!(log, "----- berth-e2e: agent start #{} -----", self.starts)
            .expect("write a log marker");
        let err = log.try_clone().expect("clone the log file");
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("BERTH_CLUSTER")
            .env_remove("BERTH_AGENT_DATA_DIR")
            .env_remove("BERTH_CAPACITY_PROVIDER")
            .env_remove("BERTH_GPUS")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} agent: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// The agent's data directory (its image store is `<data-dir>/images`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `berth image load` into this agent's image store.
    pub fn load_image(&self, tar: &Path) {
        load_image_into(&self.bin, &self.data_dir, tar);
    }

    /// The agent's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the agent logged so far (all starts).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root_dir().join("agent.log")).unwrap_or_default()
    }

    /// Kills the agent with SIGKILL and reaps it; its containers keep running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again with the same data directory and arguments.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the agent is still running");
        self.spawn();
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll the agent process").is_none(),
            None => false,
        }
    }
}

impl Drop for BerthAgent {
    fn drop(&mut self) {
        self.kill9();
        kill_processes_under(&self.data_dir);
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines.len().saturating_sub(60);
            eprintln!(
                "----- berth agent log (last {} lines, {}) -----\n{}",
                lines.len() - tail,
                self.data_dir.display(),
                lines[tail..].join("\n")
            );
        }
        if std::env::var_os("BERTH_E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("berth-e2e: kept {}", kept.display());
        }
    }
}

/// Polls DescribeTasks until the task's lastStatus is `status` (or, when waiting for
/// anything but STOPPED, until it stopped instead: then it panics showing the task). Returns
/// the task as last described.
pub async fn wait_task_status(
    client: &aws_sdk_ecs::Client,
    cluster: &str,
    task_arn: &str,
    status: &str,
    timeout: Duration,
) -> aws_sdk_ecs::types::Task {
    let deadline = Instant::now() + timeout;
    loop {
        let out = client
            .describe_tasks()
            .cluster(cluster)
            .tasks(task_arn)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "DescribeTasks {task_arn}: {}",
                    aws_sdk_ecs::error::DisplayErrorContext(&e)
                )
            });
        let task = out.tasks().first().cloned();
        if let Some(task) = task {
            let last = task.last_status().unwrap_or_default();
            if last == status {
                return task;
            }
            assert!(
                !(last == "STOPPED" && status != "STOPPED"),
                "task {task_arn} stopped while waiting for {status}: {task:#?}"
            );
            if Instant::now() > deadline {
                panic!("task {task_arn} did not reach {status} within {timeout:?}: {task:#?}");
            }
        } else if Instant::now() > deadline {
            panic!(
                "task {task_arn} is not described within {timeout:?}: failures {:?}",
                out.failures()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for BerthServer {
    fn drop(&mut self) {
        self.kill9();
        // Managed (Fargate) containers outlive `berth up` by design; a test leaves none behind.
        kill_processes_under(&self.data_dir);
        if std::thread::panicking() {
            // The test failed: show what the server said (cargo test prints a failed test's
            // captured output).
            let stderr = self.stderr();
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = lines.len().saturating_sub(60);
            eprintln!(
                "----- berth stderr (last {} lines, {}) -----\n{}",
                lines.len() - tail,
                self.endpoint(),
                lines[tail..].join("\n")
            );
        }
        if std::env::var_os("BERTH_E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("berth-e2e: kept {}", kept.display());
        }
    }
}

/// An aws-sdk-ecs config builder for any endpoint: given credentials, no retries, a 30 s
/// operation timeout, plain-HTTP hyper client (no TLS stack).
pub fn ecs_config_for(
    endpoint: &str,
    region: &str,
    credentials: Credentials,
) -> aws_sdk_ecs::config::Builder {
    aws_sdk_ecs::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
}

/// The AWS error code of an SDK error (`ClusterNotFoundException`, ...), if the server sent one
/// the SDK could parse.
pub fn sdk_error_code<E, R>(err: &SdkError<E, R>) -> Option<String>
where
    E: ProvideErrorMetadata,
{
    err.code().map(str::to_owned)
}

/// The HTTP status of an SDK error's response, if there was a response.
pub fn sdk_error_status<E>(
    err: &SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Asserts that an SDK call failed with the AWS error `code` and returns its message.
#[track_caller]
pub fn assert_sdk_error<T, E>(
    result: Result<T, SdkError<E, aws_sdk_ecs::config::http::HttpResponse>>,
    code: &str,
) -> String
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(v) => panic!("expected error {code}, got success: {v:?}"),
        Err(err) => {
            let got = sdk_error_code(&err);
            let status = sdk_error_status(&err);
            let body = err
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(|b| String::from_utf8_lossy(b).into_owned());
            assert_eq!(
                got.as_deref(),
                Some(code),
                "wrong error (HTTP {status:?}); body: {body:?}; error: {}",
                aws_sdk_ecs::error::DisplayErrorContext(&err)
            );
            err.message().unwrap_or_default().to_owned()
        }
    }
}

/// Parses successful CLI output as JSON; panics with stderr on failure.
#[track_caller]
pub fn cli_json(out: &Output, args: &[&str]) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aws {args:?} failed with {}:\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    if stdout.trim().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("aws {args:?} printed no JSON ({e}):\n{stdout}"))
}

/// The error code in the CLI's `An error occurred (Code) when calling the Op operation: ...`.
pub fn cli_error_code(stderr: &str) -> Option<String> {
    let start = stderr.find("An error occurred (")? + "An error occurred (".len();
    let len = stderr[start..].find(')')?;
    Some(stderr[start..start + len].to_owned())
}

/// Asserts that the CLI failed with the AWS error `code`; returns stderr.
#[track_caller]
pub fn assert_cli_error(out: &Output, code: &str, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "aws {args:?} succeeded, expected {code}:\nstdout: {stdout}"
    );
    assert_eq!(
        cli_error_code(&stderr).as_deref(),
        Some(code),
        "aws {args:?}: wrong error; stderr: {stderr}"
    );
    stderr
}

/// `SystemTime::now()` moved by `secs` (negative: into the past).
pub fn now_offset(secs: i64) -> SystemTime {
    let now = SystemTime::now();
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs < 0 { now - d } else { now + d }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_look_like_aws_keys() {
        let ak = random_access_key_id();
        assert_eq!(ak.len(), 20);
        assert!(ak.starts_with("AKIA"));
        assert!(
            ak.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        let sk = random_secret_access_key();
        assert_eq!(sk.len(), 40);
        assert_ne!(random_secret_access_key(), sk);
    }

    #[test]
    fn cli_error_code_is_extracted() {
        let stderr = "\nAn error occurred (ClusterNotFoundException) when calling the \
                      DescribeClusters operation: Cluster not found.\n";
        assert_eq!(
            cli_error_code(stderr).as_deref(),
            Some("ClusterNotFoundException")
        );
        assert_eq!(
            cli_error_code("Could not connect to the endpoint URL"),
            None
        );
    }

    #[test]
    fn profile_dir_strips_deps() {
        let dir = profile_dir().unwrap();
        assert_ne!(dir.file_name().unwrap(), "deps");
    }
}
