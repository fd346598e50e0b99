//! FTP operations the end-to-end tests share: STOR, APPE and RETR through suppaftp, and the
//! code and text of a refused command.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use suppaftp::FtpError;
use suppaftp::tokio::AsyncFtpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The reply code and text of a refused command.
pub(crate) fn refused(e: FtpError) -> (u32, String) {
    match e {
        FtpError::UnexpectedResponse(r) => (r.status.code(), r.as_string().unwrap_or_default()),
        other => panic!("expected an FTP reply, got {other}"),
    }
}

/// Connects to `addr`, logs in and switches to binary: the session every transfer test
/// starts from.
pub(crate) async fn binary_login(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
) -> AsyncFtpStream {
    let mut ftp = AsyncFtpStream::connect(addr).await.expect("connect");
    ftp.login(user, password).await.expect("login");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .expect("TYPE I");
    ftp
}

/// STOR `name` with `body`.
pub(crate) async fn put(ftp: &mut AsyncFtpStream, name: &str, body: &[u8]) -> Result<(), FtpError> {
    let mut s = ftp.put_with_stream(name).await?;
    s.write_all(body).await.map_err(FtpError::ConnectionError)?;
    s.finish().await
}

/// APPE `body` to `name`.
pub(crate) async fn appe(
    ftp: &mut AsyncFtpStream,
    name: &str,
    body: &[u8],
) -> Result<(), FtpError> {
    let mut s = ftp.append_with_stream(name).await?;
    s.write_all(body).await.map_err(FtpError::ConnectionError)?;
    s.finish().await
}

/// RETR `name` from byte `offset` (REST first).
pub(crate) async fn get(
    ftp: &mut AsyncFtpStream,
    name: &str,
    offset: usize,
) -> Result<Vec<u8>, FtpError> {
    ftp.resume_transfer(offset).await?;
    let mut s = ftp.retr_as_stream(name).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .await
        .map_err(FtpError::ConnectionError)?;
    s.finish().await?;
    Ok(out)
}
