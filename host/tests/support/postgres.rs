//! A throwaway PostgreSQL cluster per test: initdb into a temp dir (as the `postgres` user
//! when the tests run as root, since PostgreSQL refuses to run as root), listening on
//! 127.0.0.1 on a free port with password (SCRAM) authentication, stopped on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The login the tests use; a non-superuser owning the `qcnn` database.
pub const USER: &str = "qcnn_tester";

/// The login's password: random per test process, so no credential is committed.
pub fn password() -> &'static str {
    static PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PASSWORD.get_or_init(random_secret)
}

fn superuser_password() -> &'static str {
    static PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PASSWORD.get_or_init(random_secret)
}

/// 16 random bytes from the OS, as hex.
fn random_secret() -> String {
    use std::io::Read;
    let mut bytes = [0_u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
    /// Server certificate and key, when started with TLS.
    pub tls: Option<TlsFiles>,
}

pub struct TlsFiles {
    /// Self-signed; its only name is `localhost`.
    pub cert: PathBuf,
}

impl PgServer {
    pub fn start() -> PgServer {
        Self::start_with(false)
    }

    /// With `ssl=on` and a self-signed certificate for `localhost`.
    pub fn start_tls() -> PgServer {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("qcnn-pg-")
            .tempdir()
            .expect("creating a temp dir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, superuser_password()).unwrap();
        chown_to_postgres(dir.path());
        as_postgres(
            Command::new(pg_binary("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .args(["--encoding=UTF8", "--no-locale", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
        );
        let tls = tls.then(|| {
            let cert = dir.path().join("server.crt");
            let key = dir.path().join("server.key");
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("running openssl (package openssl)");
            assert!(
                out.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            chown_to_postgres(dir.path());
            set_mode(&key, 0o600);
            let conf = format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert.display(),
                key.display()
            );
            append(&data.join("postgresql.conf"), &conf);
            // TCP clients must use TLS, so a successful connection proves that TLS was used.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .unwrap();
            chown_to_postgres(dir.path());
            TlsFiles { cert }
        });
        let port = free_port();
        append(
            &data.join("postgresql.conf"),
            &format!(
                "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
                 fsync = off\nmax_connections = 40\n",
                dir.path().display()
            ),
        );
        let server = PgServer { dir, port, tls };
        server.pg_ctl_start();
        // Two calls: CREATE DATABASE cannot share psql's implicit transaction.
        server.psql_superuser(&format!(
            "CREATE ROLE {USER} LOGIN PASSWORD '{}'",
            password()
        ));
        server.psql_superuser(&format!("CREATE DATABASE qcnn OWNER {USER}"));
        server
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/qcnn`.
    pub fn url(&self) -> String {
        self.url_with_password(password())
    }

    pub fn url_with_password(&self, password: &str) -> String {
        format!("postgres://{USER}:{password}@127.0.0.1:{}/qcnn", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl_start(&self) {
        as_postgres(
            Command::new(pg_binary("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "start"]),
        );
    }

    /// Stops the server at once, dropping every connection (as a crash or failover would).
    pub fn stop(&self) {
        as_postgres(
            Command::new(pg_binary("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"]),
        );
    }

    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// Runs SQL as the superuser over the Unix socket; returns psql's unaligned output.
    pub fn psql_superuser(&self, sql: &str) -> String {
        let out = as_postgres(
            Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                ])
                .arg("-h")
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]),
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A client for assertions, as the test user.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls)
            .expect("connecting as the test user")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new(pg_binary("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs `command` (as `postgres` when we are root) and requires success.
fn as_postgres(command: &mut Command) -> Output {
    let program = command.get_program().to_owned();
    let out = if is_root() {
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(command.get_args());
        wrapped.output()
    } else {
        command.output()
    }
    .unwrap_or_else(|e| panic!("running {program:?}: {e}"));
    assert!(
        out.status.success(),
        "{program:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chown_to_postgres(dir: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", dir.display());
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// The PATH entry, else Debian's versioned directory.
fn pg_binary(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/lib/postgresql/15/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} not found on PATH nor in /usr/lib/postgresql/15/bin"))
}

/// A port nothing listens on right now (the OS picks it; the tiny race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}
