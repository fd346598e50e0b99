//! Team mode (`bucketftp-server --config FILE`): FTP users mapped to buckets.
//!
//! - [`users`]: team users (argon2id passwords, a storage, a bucket, a home, rights).
//! - [`config_file`]: the TOML schema and its checks; errors name the file, line and key.
//! - [`import`]: Tencent COS FTP Server and qsftpd configs converted to that TOML.
//! - [`filezilla`]: FileZilla Site Manager XML for a user ("Export FileZilla site…").

pub mod config_file;
pub mod filezilla;
pub mod import;
pub mod users;
