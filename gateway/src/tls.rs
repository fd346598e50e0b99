//! FTPS (explicit, AUTH TLS): the server certificate and the rustls configuration.
//!
//! On first use a self-signed certificate for `localhost` / `127.0.0.1` / `::1` is generated
//! (rcgen) into the data folder and reused afterwards; a user's own certificate and key (PEM)
//! can be given instead.
//!
//! FileZilla trusts a TLS data connection only when it resumes the control connection's TLS
//! session. Two `rustls::ServerConfig`s are built at start and shared by every session: one
//! for control connections (the relay's `AUTH TLS` handshake) and one for data connections
//! (libunftp's, after `PROT P`). They share one session cache (TLS 1.2 session ids) and one
//! ticketer (TLS 1.3 tickets, and TLS 1.2 tickets), so a data connection resumes the control
//! session with either version. Only the control configuration sends TLS 1.3 tickets: rustls
//! sends them right after every handshake, and on a data connection of a client that only
//! uploads they would stay unread, and the client's kernel answers its close with a reset that
//! throws the upload's last bytes away (seen with curl). Clients read their control
//! connection, so tickets sent there arrive.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use localstore::atomic::{Access, WriteError, write_atomic};
use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate file name in the data folder.
pub const CERT_FILE: &str = "ftps-cert.pem";
/// The key file name in the data folder.
pub const KEY_FILE: &str = "ftps-key.pem";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// Generating the certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate or key.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

impl From<WriteError> for TlsError {
    fn from(WriteError { path, source }: WriteError) -> Self {
        TlsError::Io { path, source }
    }
}

/// A ready TLS configuration and what to tell the user about it.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// Control connections: issues TLS 1.3 tickets.
    pub control: Arc<ServerConfig>,
    /// Data connections: resumes the control session, issues no TLS 1.3 tickets.
    pub data: Arc<ServerConfig>,
    /// SHA-256 fingerprint of the certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// Where the certificate lives.
    pub cert_path: PathBuf,
}

/// Loads the certificate from `dir`, generating it first if it is not there.
pub fn load_or_create(dir: &Path) -> Result<TlsMaterial, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if !cert_path.exists() || !key_path.exists() {
        generate(&cert_path, &key_path)?;
    }
    from_files(&cert_path, &key_path)
}

/// Loads a user's certificate chain and key (PEM).
pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<TlsMaterial, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| TlsError::Pem {
            path: cert_path.into(),
            what: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.into(),
            what: e.to_string(),
        })?;
    let first = certs.first().ok_or_else(|| TlsError::Pem {
        path: cert_path.into(),
        what: "no certificate in the file".into(),
    })?;
    let fingerprint = fingerprint(first.as_ref());
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Pem {
        path: key_path.into(),
        what: e.to_string(),
    })?;
    let (control, data) = server_configs(certs, key)?;
    Ok(TlsMaterial {
        control,
        data,
        fingerprint,
        cert_path: cert_path.into(),
    })
}

/// TLS 1.3 tickets sent after a control connection's handshake. Every data connection of
/// the session resumes with one of them (stateless tickets can be used again).
pub const CONTROL_TICKETS: usize = 2;

/// The control and the data configuration (see the module docs).
fn server_configs(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut control = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    control.session_storage = ServerSessionMemoryCache::new(4096);
    control.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    control.send_tls13_tickets = CONTROL_TICKETS;
    // The clone shares the session cache and the ticketer (both behind `Arc`).
    let mut data = control.clone();
    data.send_tls13_tickets = 0;
    Ok((Arc::new(control), Arc::new(data)))
}

fn generate(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "BucketFTP local FTPS");
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 1, 1);
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_atomic(key_path, key.serialize_pem().as_bytes(), Access::OwnerOnly)?;
    write_atomic(cert_path, cert.pem().as_bytes(), Access::Default)?;
    Ok(())
}

/// The SHA-256 fingerprint of a DER certificate as FileZilla shows it (`AB:CD:…`).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reuses() {
        let dir = std::env::temp_dir().join(format!("bucketftp-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = load_or_create(&dir).unwrap_or_else(|e| panic!("{e}"));
        let b = load_or_create(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.fingerprint, b.fingerprint, "reused, not regenerated");
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        names.sort();
        assert_eq!(names, [CERT_FILE, KEY_FILE], "no temporary file left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("bucketftp-tls-bad-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let cert = dir.join("c.pem");
        let _ = std::fs::write(&cert, "not a pem");
        let err = from_files(&cert, &dir.join("missing.pem"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("c.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fingerprint_format() {
        let f = fingerprint(b"abc");
        assert!(f.starts_with("BA:78:16:BF"), "{f}");
    }
}
