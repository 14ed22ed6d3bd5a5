//! PostgreSQL connection strings (URLs and libpq's key=value form): split into what
//! `postgres::Config` parses and the libpq TLS options it does not (`sslmode=verify-ca|
//! verify-full`, `sslrootcert`), and their printable form.
//!
//! The printable form is built from the parsed `postgres::Config`, never by cutting the
//! password out of the string: whatever the string looks like, the password is not among the
//! fields printed, so it cannot leak through a quoting or separator rule we did not foresee.

use std::path::PathBuf;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use postgres::config::Host;

/// How the server's certificate is checked, with libpq's meaning of each `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVerify {
    /// `disable`, `prefer`, `require` without `sslrootcert`: encrypt (if at all), no check.
    None,
    /// `verify-ca`, or `require` with `sslrootcert` (as libpq does): the chain must lead to a
    /// trusted root; any host name is accepted.
    Ca,
    /// `verify-full`: the chain and the host name must both check out.
    Full,
}

/// A parsed connection string.
#[derive(Clone, Debug)]
pub struct ConnectionString {
    /// Everything but the TLS checks below (`sslmode=verify-*` is `require` here).
    pub config: postgres::Config,
    pub verify: TlsVerify,
    /// Trusted root certificates (PEM), added to the system's.
    pub root_cert: Option<PathBuf>,
}

/// Is `url` a PostgreSQL URL (as opposed to a key=value string or a SQLite file name)?
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Why a connection string does not parse. The messages never quote the string, which may
/// hold a password.
pub type ParseError = String;

/// Parses a URL or key=value connection string.
pub fn parse(text: &str) -> Result<ConnectionString, ParseError> {
    let mut tls = TlsOptions::default();
    let config_text = if is_postgres(text) {
        without_tls_options_url(text, &mut tls)?
    } else {
        without_tls_options_key_value(text, &mut tls)?
    };
    let config: postgres::Config = config_text
        .parse()
        .map_err(|e: postgres::Error| e.to_string())?;
    let verify = match tls.mode {
        Some(TlsVerify::Full) => TlsVerify::Full,
        Some(TlsVerify::Ca) => TlsVerify::Ca,
        // libpq: "if a root CA file exists, the behavior of sslmode=require is the same as that
        // of verify-ca".
        _ if tls.root_cert.is_some()
            && config.get_ssl_mode() == postgres::config::SslMode::Require =>
        {
            TlsVerify::Ca
        }
        _ => TlsVerify::None,
    };
    Ok(ConnectionString {
        config,
        verify,
        root_cert: tls.root_cert,
    })
}

/// The connection string as `postgres://user:***@host:port/dbname`, from its parsed fields.
pub fn printable(config: &postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| encode(u, PART))
        .unwrap_or_default();
    let password = if config.get_password().is_some() {
        ":***"
    } else {
        ""
    };
    let at = if user.is_empty() && password.is_empty() {
        ""
    } else {
        "@"
    };
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) if name.contains(':') => format!("[{}]", encode(name, IPV6)),
                Host::Tcp(name) => encode(name, PART),
                Host::Unix(path) => encode(&path.to_string_lossy(), PART),
            };
            // One port serves every host; otherwise they pair up (postgres::Config's rule).
            match ports.get(i).or(ports.first().filter(|_| ports.len() == 1)) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let dbname = config
        .get_dbname()
        .map(|d| format!("/{}", encode(d, PART)))
        .unwrap_or_default();
    format!("postgres://{user}{password}{at}{}{dbname}", hosts.join(","))
}

/// Characters escaped in the printable form: the URL delimiters and every control character,
/// so a hostile user or database name cannot write escape sequences to the terminal.
const PART: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b']');
const IPV6: &AsciiSet = &PART.remove(b':');

fn encode(text: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(text, set).to_string()
}

#[derive(Default)]
struct TlsOptions {
    mode: Option<TlsVerify>,
    root_cert: Option<PathBuf>,
}

impl TlsOptions {
    /// Takes `key=value` if it is one of the options `postgres::Config` lacks; otherwise
    /// returns false and the pair stays in the string.
    fn take(&mut self, key: &str, value: &str) -> bool {
        match (key, value) {
            ("sslmode", "verify-ca") => self.mode = Some(TlsVerify::Ca),
            ("sslmode", "verify-full") => self.mode = Some(TlsVerify::Full),
            ("sslrootcert", path) => self.root_cert = Some(PathBuf::from(path)),
            _ => return false,
        }
        true
    }
}

/// The URL without `sslrootcert`, and with `sslmode=verify-*` as `sslmode=require`.
fn without_tls_options_url(url: &str, tls: &mut TlsOptions) -> Result<String, ParseError> {
    // Where postgres::Config sees the query: its credentials run to the first '@' (so a
    // password may hold '?' or '/'), and the query starts at the next '?'.
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let credentials_end = url[after_scheme..]
        .find('@')
        .map_or(after_scheme, |i| after_scheme + i + 1);
    let Some(query_start) = url[credentials_end..]
        .find('?')
        .map(|i| credentials_end + i)
    else {
        return Ok(url.to_owned());
    };
    let mut kept = Vec::new();
    for pair in url[query_start + 1..].split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str, what: &str| {
            percent_decode_str(text)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| format!("the {what} of a query parameter is not UTF-8 once decoded"))
        };
        let (key, decoded) = (decode(key, "name")?, decode(value, "value")?);
        if !tls.take(&key, &decoded) {
            kept.push(pair);
        } else if key == "sslmode" {
            kept.push("sslmode=require");
        }
    }
    let base = &url[..query_start];
    Ok(if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// The key=value string without `sslrootcert`, and with `sslmode=verify-*` as
/// `sslmode=require`, every value re-quoted.
fn without_tls_options_key_value(text: &str, tls: &mut TlsOptions) -> Result<String, ParseError> {
    let mut kept = Vec::new();
    for (key, value) in key_value_pairs(text)? {
        if !tls.take(key, &value) {
            kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        } else if key == "sslmode" {
            kept.push("sslmode=require".to_owned());
        }
    }
    Ok(kept.join(" "))
}

/// libpq's key=value grammar, as `postgres::Config` reads it: whitespace around `=` and
/// between pairs, values quoted with `'` or bare, `\` escaping the next character.
fn key_value_pairs(text: &str) -> Result<Vec<(&str, String)>, ParseError> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        rest = rest.strip_prefix('=').ok_or_else(|| {
            "a word without `=` after it (a value holding spaces must be quoted with ')".to_owned()
        })?;
        if key.is_empty() {
            return Err("an `=` without a key before it".to_owned());
        }
        rest = rest.trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let quoted = rest.starts_with('\'');
        if quoted {
            chars.next();
        }
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '\'' if quoted => {
                    end = Some(i + 1);
                    break;
                }
                c if c.is_whitespace() && !quoted => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = match end {
            Some(end) => end,
            None if quoted => return Err("a quoted value without its closing `'`".to_owned()),
            None => rest.len(),
        };
        if value.is_empty() && !quoted {
            return Err("a key with an empty value (write key='' for an empty one)".to_owned());
        }
        pairs.push((key, value));
        rest = rest[end..].trim_start();
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Vec<u8> {
        parse(text).unwrap().config.get_password().unwrap().to_vec()
    }

    #[test]
    fn printable_form_has_no_password_and_keeps_the_rest() {
        let parsed =
            parse("postgres://qcnn:s3cr%40t:x@db.example:5432/qcnn?sslmode=require").unwrap();
        assert_eq!(
            printable(&parsed.config),
            "postgres://qcnn:***@db.example:5432/qcnn"
        );
        let parsed = parse("postgresql://qcnn@localhost/db").unwrap();
        assert_eq!(
            printable(&parsed.config),
            "postgres://qcnn@localhost:5432/db"
        );
        let parsed = parse("host=h1,h2 port=1,2 user=u password=hunter2 dbname=d").unwrap();
        assert_eq!(printable(&parsed.config), "postgres://u:***@h1:1,h2:2/d");
    }

    /// The cases of issue 17: a `/` or `?` in a URL's password, spaces around `=`, a tab, a
    /// quoted password holding a space.
    #[test]
    fn passwords_the_old_redaction_printed_parse_as_passwords() {
        assert_eq!(
            password("postgres://slash:top/SECRET9@127.0.0.1:5/db"),
            b"top/SECRET9"
        );
        assert_eq!(password("postgres://q:a?b@127.0.0.1:5/db"), b"a?b");
        assert_eq!(password("host=h password = hunter2 user=u"), b"hunter2");
        assert_eq!(password("host=h\tpassword=hunter2\tuser=u"), b"hunter2");
        assert_eq!(password("host=h password='hun ter2' user=u"), b"hun ter2");
        assert_eq!(password(r"host=h password='it\'s \\ ok'"), br"it's \ ok");
    }

    #[test]
    fn malformed_key_value_strings_are_refused_without_quoting_them() {
        for text in [
            "host=h password=Sec1 Ret2",
            "password='Sec3",
            "user=u =Sec4",
            "password= Sec5 user",
        ] {
            let reason = parse(text).unwrap_err();
            assert!(
                !reason.contains("Sec") && !reason.contains("Ret"),
                "{reason}"
            );
        }
    }

    #[test]
    fn verify_full_becomes_require_plus_a_check() {
        let parsed = parse(
            "postgres://u:p@localhost:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem",
        )
        .unwrap();
        assert_eq!(
            parsed.config.get_ssl_mode(),
            postgres::config::SslMode::Require
        );
        assert_eq!(parsed.verify, TlsVerify::Full);
        assert_eq!(parsed.root_cert, Some(PathBuf::from("/tmp/ca x.pem")));

        let parsed = parse("host=h sslmode=verify-ca sslrootcert='/c a.pem' user=u").unwrap();
        assert_eq!(parsed.verify, TlsVerify::Ca);
        assert_eq!(parsed.root_cert, Some(PathBuf::from("/c a.pem")));
    }

    /// libpq checks the chain in `require` mode once a root certificate is given.
    #[test]
    fn require_with_a_root_certificate_verifies_the_chain() {
        let parsed = parse("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(parsed.verify, TlsVerify::Ca);
        let parsed = parse("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(parsed.verify, TlsVerify::None);
        assert!(parse("postgres://u@h/db?sslrootcert=%ff").is_err());
    }
}
