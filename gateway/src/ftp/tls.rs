//! FTPS (explicit, AUTH TLS): the server certificate and the rustls configuration.
//!
//! On first use a self-signed certificate for `localhost` / `127.0.0.1` / `::1` is generated
//! (rcgen) into the data folder and reused afterwards; a user's own certificate and key (PEM)
//! can be given instead.
//!
//! A TLS data connection must resume its control connection's TLS session: FileZilla trusts
//! one only then, and the server requires it (`require_tls_session_reuse`, on by default) so
//! that nobody else can take a passive port's connection. `rustls::ServerConfig`s are built at
//! start: one for control connections (the relay's `AUTH TLS` handshake) and two for data
//! connections (the relay's, after `PROT P`). Each control session uses them with a session
//! cache (TLS 1.2 session ids) and a ticketer (TLS 1.3 and TLS 1.2 tickets) of its own
//! ([`SessionTls`]), shared by its control and data connections: a data connection resumes
//! its control session with either version, and no other session's; a data connection's own
//! handshake adds nothing that could be resumed unless it resumed itself.
//!
//! The control configuration sends [`CONTROL_TICKETS`] TLS 1.3 tickets. rustls sends tickets
//! right after every handshake; on the data connection of an upload they would stay unread,
//! and the client's kernel answers its close with a reset that throws the upload's last bytes
//! away (seen with curl), so the plain data configuration sends none. The other sends
//! [`DATA_TICKETS`], for a data connection whose transfer is known, when its ClientHello
//! arrives, to be a download or a listing: read to its end, tickets included. A client that
//! uses each ticket once (rustls) can so make 8 uploads in a row, and any download or
//! listing gives it 8 again; OpenSSL (curl, Python, WinSCP), GnuTLS (FileZilla, lftp) and Go
//! (rclone) use one ticket as often as they like.

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
    /// Data connections read to their end (downloads, listings): issues
    /// [`DATA_TICKETS`] TLS 1.3 tickets.
    pub data_reading: Arc<ServerConfig>,
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
    let (control, data, data_reading) = server_configs(certs, key)?;
    Ok(TlsMaterial {
        control,
        data,
        data_reading,
        fingerprint,
        cert_path: cert_path.into(),
    })
}

/// TLS 1.3 tickets sent after a control connection's handshake. Every data connection of
/// the session resumes with one of them. Stateless tickets can be used again, and OpenSSL,
/// GnuTLS and Go do; rustls uses each once and keeps 8 per server, so 8 carry a rustls
/// client through 8 data connections, and each download or listing brings
/// [`DATA_TICKETS`] more.
pub const CONTROL_TICKETS: usize = 8;

/// TLS 1.3 tickets sent after the handshake of a data connection whose transfer is known to
/// be read to its end (a download, a listing): the client reads them with the data, and a
/// client that uses each ticket once has its 8 again.
pub const DATA_TICKETS: usize = 8;

/// The TLS configurations of one control session: the server's, each with a session cache
/// and a ticketer of this session's own. A TLS session that one of its handshakes issued can
/// be resumed only by its own data connections: a data connection that resumed is this
/// session's (`relay::data`), whatever its TLS version; another session's ticket or session
/// id, or a full handshake, is not.
///
/// A data connection's own handshake must not add to what can be resumed: a stranger's full
/// handshake, refused afterwards, would otherwise leave a TLS 1.2 session in the cache, or
/// tickets made with the session's keys, that it could resume on the next passive port. So
/// each data connection gets a configuration of its own ([`SessionTls::data_connection`])
/// whose cache stores nothing and whose ticketer issues tickets only once this very
/// connection has resumed one of the session's.
#[derive(Clone)]
pub struct SessionTls {
    /// The control connection's (sends [`CONTROL_TICKETS`]).
    pub control: Arc<ServerConfig>,
    /// Data connections' (no tickets).
    data: Arc<ServerConfig>,
    /// Data connections read to their end (sends [`DATA_TICKETS`]).
    data_reading: Arc<ServerConfig>,
    cache: Arc<dyn rustls::server::StoresServerSessions>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

/// The session cache as a data connection sees it: it resumes what the control session
/// stored, and stores nothing itself.
#[derive(Debug)]
struct ResumeOnly(Arc<dyn rustls::server::StoresServerSessions>);

impl rustls::server::StoresServerSessions for ResumeOnly {
    fn put(&self, _key: Vec<u8>, _value: Vec<u8>) -> bool {
        false
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.take(key)
    }
    fn can_cache(&self) -> bool {
        false
    }
}

/// The session's ticketer as one data connection sees it: it opens the session's tickets,
/// and makes new ones only after it opened one for this connection (a resumed handshake).
#[derive(Debug)]
struct AfterResume {
    inner: Arc<dyn rustls::server::ProducesTickets>,
    resumed: std::sync::atomic::AtomicBool,
}

impl rustls::server::ProducesTickets for AfterResume {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        if self.resumed.load(std::sync::atomic::Ordering::SeqCst) {
            self.inner.encrypt(plain)
        } else {
            None
        }
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher);
        if plain.is_some() {
            self.resumed
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        plain
    }
}

impl std::fmt::Debug for SessionTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTls")
    }
}

/// Sessions a control session's cache keeps (TLS 1.2 session ids; a session makes one per
/// resumed data connection at most).
const SESSION_CACHE: usize = 64;

impl SessionTls {
    /// The server's three configurations, given a session cache and a ticketer of their own.
    pub fn new(
        control: &ServerConfig,
        data: &ServerConfig,
        data_reading: &ServerConfig,
    ) -> Result<SessionTls, TlsError> {
        let cache: Arc<dyn rustls::server::StoresServerSessions> =
            ServerSessionMemoryCache::new(SESSION_CACHE);
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        let own = |base: &ServerConfig| {
            let mut c = base.clone();
            c.session_storage = cache.clone();
            c.ticketer = ticketer.clone();
            Arc::new(c)
        };
        Ok(SessionTls {
            control: own(control),
            data: own(data),
            data_reading: own(data_reading),
            cache,
            ticketer,
        })
    }

    /// The configuration of one data connection (see the type's docs): `reading`, a
    /// connection whose transfer is read to its end, gets [`DATA_TICKETS`] when it resumed.
    pub fn data_connection(&self, reading: bool) -> Arc<ServerConfig> {
        let base = if reading {
            &self.data_reading
        } else {
            &self.data
        };
        let mut c = (**base).clone();
        c.session_storage = Arc::new(ResumeOnly(self.cache.clone()));
        c.ticketer = Arc::new(AfterResume {
            inner: self.ticketer.clone(),
            resumed: std::sync::atomic::AtomicBool::new(false),
        });
        Arc::new(c)
    }
}

/// The control configuration, the data configuration and the data configuration that
/// sends tickets (see the module docs).
#[allow(clippy::type_complexity)] // three of one type, named by the destructuring callers
fn server_configs(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>, Arc<ServerConfig>), TlsError> {
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
    let mut data_reading = control.clone();
    data_reading.send_tls13_tickets = DATA_TICKETS;
    Ok((Arc::new(control), Arc::new(data), Arc::new(data_reading)))
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
