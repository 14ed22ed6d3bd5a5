//! Connecting to PostgreSQL (or Greenplum): TLS with libpq's `sslmode` meanings, and a time
//! limit on everything that could otherwise wait forever: the startup handshake, a lock, a
//! statement, a peer that vanished.

use std::sync::mpsc;
use std::time::Duration;

use super::error::{DbError, WAIT};
use super::url::{self, TlsVerify};

/// A connected client and the connection string's printable form.
pub fn connect(text: &str) -> Result<(postgres::Client, String), DbError> {
    let parsed = url::parse(text).map_err(|reason| DbError::BadUrl { reason })?;
    let description = url::printable(&parsed.config);
    let mut config = parsed.config;
    let connect_timeout = *config.get_connect_timeout().unwrap_or(&WAIT);
    config.connect_timeout(connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("qcnn");
    }
    // A peer that vanished (cable, failover) is noticed by TCP instead of hanging a read.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(WAIT);
    }
    if config.get_keepalives_idle() > WAIT {
        config.keepalives_idle(WAIT);
    }
    // Server-side limits, so a lock held by another session or a stuck statement ends in an
    // error naming it; a statement may wait for a lock, so it gets twice as long. Ours come
    // first: `-c` options in the connection string win.
    let seconds = WAIT.as_secs();
    let limits = format!(
        "-c lock_timeout={seconds}s -c statement_timeout={}s",
        2 * seconds
    );
    let options = match config.get_options() {
        Some(options) => format!("{limits} {options}"),
        None => limits,
    };
    config.options(&options);

    let tls = tls_connector(&parsed.verify, parsed.root_cert.as_deref(), &description)?;
    let tls = postgres_native_tls::MakeTlsConnector::new(tls);
    // postgres' connect_timeout covers the TCP connect only; a server that accepts and then
    // never answers would hold the handshake forever, so the whole of it gets the limit.
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-connect".into())
        .spawn(move || drop(sender.send(config.connect(tls))))
        .map_err(|source| DbError::ConnectThread {
            url: description.clone(),
            source,
        })?;
    let mut client = match receiver.recv_timeout(connect_timeout + Duration::from_secs(1)) {
        Ok(result) => result.map_err(|source| DbError::Connect {
            url: description.clone(),
            source,
        })?,
        Err(_) => {
            return Err(DbError::ConnectTimeout {
                url: description,
                seconds: connect_timeout.as_secs(),
            });
        }
    };
    // Timestamps read back as text (CAST … AS TEXT) are in UTC, as SQLite's are.
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .map_err(|source| DbError::Connect {
            url: description.clone(),
            source,
        })?;
    Ok((client, description))
}

fn tls_connector(
    verify: &TlsVerify,
    root_cert: Option<&std::path::Path>,
    description: &str,
) -> Result<native_tls::TlsConnector, DbError> {
    let mut tls = native_tls::TlsConnector::builder();
    // libpq's sslmode semantics: below verify-ca, TLS only encrypts.
    match verify {
        TlsVerify::None => {
            tls.danger_accept_invalid_certs(true);
            tls.danger_accept_invalid_hostnames(true);
        }
        TlsVerify::Ca => {
            tls.danger_accept_invalid_hostnames(true);
        }
        TlsVerify::Full => {}
    }
    if let Some(path) = root_cert {
        let root_cert_error = |source| DbError::RootCert {
            path: path.to_owned(),
            source,
        };
        let pem = qcnn_config::regular_file::read(path, qcnn_config::regular_file::MAX_TEXT_BYTES)
            .map_err(root_cert_error)?;
        let cert = native_tls::Certificate::from_pem(&pem).map_err(|e| {
            root_cert_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?;
        tls.add_root_certificate(cert);
    }
    tls.build().map_err(|source| DbError::Tls {
        url: description.to_owned(),
        source,
    })
}
