//! PostgreSQL connection strings: password redaction and the libpq TLS options that the
//! `postgres` crate does not parse itself (`sslmode=verify-ca|verify-full`, `sslrootcert`).

use std::path::PathBuf;

/// How the server's certificate is checked, with libpq's meaning of each `sslmode`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsVerify {
    /// `disable`, `prefer`, `require`: encrypt (if at all) without checking the certificate.
    None,
    /// `verify-ca`: the chain must lead to a trusted root; any host name is accepted.
    Ca,
    /// `verify-full`: the chain and the host name must both check out.
    Full,
}

/// A connection string split into what `postgres::Config` parses and the TLS checks it doesn't.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionString {
    /// The string for `postgres::Config::from_str`, with `sslmode=verify-*` turned into
    /// `sslmode=require` and `sslrootcert` removed.
    pub config: String,
    pub verify: TlsVerify,
    /// Trusted root certificates (PEM), added to the system's.
    pub root_cert: Option<PathBuf>,
}

/// Is `url` a PostgreSQL URL (as opposed to a SQLite file name)?
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with its password replaced by `***`, for every message that shows a connection string.
/// Handles URLs (`postgres://user:secret@host`) and key/value strings (`password=secret`).
pub fn redact(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                let has_password = userinfo.contains(':');
                format!(
                    "{user}{}{}",
                    if has_password { ":***" } else { "" },
                    &authority[at..]
                )
            }
            None => authority.to_string(),
        };
        let tail = redact_pairs(tail, '&');
        format!("{}{authority}{tail}", &url[..scheme_end + 3])
    } else {
        redact_pairs(url, ' ')
    }
}

/// Replaces the value of every `password=` pair separated by `separator`.
fn redact_pairs(text: &str, separator: char) -> String {
    text.split(separator)
        .map(|pair| {
            let key_start = pair.rfind(['?', ' ']).map_or(0, |i| i + 1);
            match pair[key_start..].split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    format!("{}password=***", &pair[..key_start])
                }
                _ => pair.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(&separator.to_string())
}

/// Splits off `sslmode=verify-*` and `sslrootcert`, which `postgres::Config` rejects.
pub fn parse(url: &str) -> Result<ConnectionString, String> {
    let mut verify = TlsVerify::None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<Option<String>, String> {
        match (key, value) {
            ("sslmode", "verify-ca" | "verify-full") => {
                verify = if value == "verify-ca" {
                    TlsVerify::Ca
                } else {
                    TlsVerify::Full
                };
                Ok(Some("sslmode=require".to_string()))
            }
            ("sslrootcert", _) => {
                root_cert = Some(PathBuf::from(percent_decode(value)?));
                Ok(None)
            }
            _ => Ok(Some(format!("{key}={value}"))),
        }
    };
    let config = if is_postgres(url) {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    kept.extend(take(key, value)?);
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            match pair.split_once('=') {
                Some((key, value)) => kept.extend(take(key, value)?),
                None => kept.push(pair.to_string()),
            }
        }
        kept.join(" ")
    };
    Ok(ConnectionString {
        config,
        verify,
        root_cert,
    })
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {text:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_password_and_keeps_the_rest() {
        assert_eq!(
            redact("postgres://qcnn:s3cr%40t:x@db.example:5432/qcnn?sslmode=require"),
            "postgres://qcnn:***@db.example:5432/qcnn?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://qcnn@localhost/db"),
            "postgresql://qcnn@localhost/db"
        );
        assert_eq!(
            redact("postgres://localhost/db?user=u&password=hunter2&sslmode=disable"),
            "postgres://localhost/db?user=u&password=***&sslmode=disable"
        );
    }

    #[test]
    fn redacts_key_value_password() {
        assert_eq!(
            redact("host=localhost password=hunter2 user=qcnn"),
            "host=localhost password=*** user=qcnn"
        );
    }

    #[test]
    fn verify_full_becomes_require_plus_a_check() {
        let parsed = parse(
            "postgres://u:p@localhost:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem",
        )
        .unwrap();
        assert_eq!(
            parsed.config,
            "postgres://u:p@localhost:5/db?sslmode=require"
        );
        assert_eq!(parsed.verify, TlsVerify::Full);
        assert_eq!(parsed.root_cert, Some(PathBuf::from("/tmp/ca x.pem")));

        let parsed = parse("host=h sslmode=verify-ca sslrootcert=/ca.pem user=u").unwrap();
        assert_eq!(parsed.config, "host=h sslmode=require user=u");
        assert_eq!(parsed.verify, TlsVerify::Ca);
    }

    #[test]
    fn plain_modes_pass_through() {
        let parsed = parse("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(parsed.config, "postgres://u@h/db?sslmode=require");
        assert_eq!(parsed.verify, TlsVerify::None);
        assert!(parse("postgres://u@h/db?sslrootcert=%zz").is_err());
    }
}
