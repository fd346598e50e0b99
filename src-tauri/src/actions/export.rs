//! "Export FileZilla sites…": one Site Manager site per profile, written as a new file in
//! the Downloads folder (else home); from the tray, never with secrets and announced in
//! the banner.

use std::path::{Path, PathBuf};

use gateway::team::filezilla::Site;
use serde::Serialize;

use super::core::lock;
use super::{ActionError, Core, HOST, Notice};
use crate::persist::PersistError;

/// The outcome of "Export FileZilla sites…".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportView {
    /// The file written (never an existing file replaced).
    pub path: String,
    /// Sites in the file.
    pub sites: usize,
    /// True when secret keys are in the file (the user ticked "Include the secret keys").
    pub with_secrets: bool,
    /// Profiles left out because they have no default bucket or access key (display names).
    pub skipped: Vec<String>,
}

/// Why "Export FileZilla sites…" wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No profile can become a site.
    #[error("no profile has an access key and a default bucket")]
    NoSites,
    /// Neither a Downloads folder nor a home folder is known.
    #[error("no Downloads or home folder")]
    NoFolder,
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] PersistError),
}

/// The base name of the exported Site Manager file.
pub const EXPORT_FILE: &str = "bucketftp-sites.xml";

/// Where exports go: the user's Downloads folder, else the home folder.
pub fn export_dir() -> Option<PathBuf> {
    let dirs = directories::UserDirs::new()?;
    Some(
        dirs.download_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.home_dir().to_path_buf()),
    )
}

impl Core {
    /// One FileZilla site per profile (127.0.0.1, the server's port, `AK/bucket`, explicit
    /// TLS when FTPS is offered). Secret keys only when `include_secrets`; profiles without a
    /// stored secret then still ask for the password. Profiles with no access key or default
    /// bucket are left out and named in the second list.
    pub fn filezilla_sites(
        &self,
        include_secrets: bool,
    ) -> Result<(Vec<Site>, Vec<String>), ActionError> {
        let port = self.port();
        let mut sites = Vec::new();
        let mut skipped = Vec::new();
        for v in self.profiles() {
            let name = self.display_name(&v.profile);
            if !v.has_login() {
                skipped.push(name);
                continue;
            }
            let secret = if include_secrets {
                self.secret_of(&v.profile.id)?
            } else {
                None
            };
            sites.push(Site {
                name: format!("BucketFTP - {name}"),
                host: HOST.into(),
                port,
                user: v.user,
                secret,
                explicit_tls: self.tls.is_some(),
            });
        }
        Ok((sites, skipped))
    }

    /// Writes the FileZilla Site Manager file into `dir` as `bucketftp-sites.xml` (or
    /// `bucketftp-sites-2.xml`, … when taken: an existing file is never replaced), atomically.
    pub fn export_filezilla_sites_to(
        &self,
        dir: &Path,
        include_secrets: bool,
    ) -> Result<ExportView, ActionError> {
        let (sites, skipped) = self.filezilla_sites(include_secrets)?;
        if sites.is_empty() {
            return Err(ExportError::NoSites.into());
        }
        let xml = gateway::team::filezilla::site_manager_xml(&sites);
        let path = crate::persist::write_new(dir, EXPORT_FILE, xml.as_bytes())
            .map_err(ExportError::Write)?;
        tracing::info!(file = %path.display(), sites = sites.len(), with_secrets = include_secrets,
            "FileZilla sites exported");
        Ok(ExportView {
            path: path.display().to_string(),
            sites: sites.len(),
            with_secrets: include_secrets && sites.iter().any(|s| s.secret.is_some()),
            skipped,
        })
    }

    /// "Export FileZilla sites…" from the window: into the Downloads folder (else home).
    pub fn export_filezilla_sites(&self, include_secrets: bool) -> Result<ExportView, ActionError> {
        let dir = export_dir().ok_or(ExportError::NoFolder)?;
        self.export_filezilla_sites_to(&dir, include_secrets)
    }

    /// The tray's "Export FileZilla sites…": into the Downloads folder (else home), never
    /// with secrets; see [`Core::tray_export_sites_to`].
    pub fn tray_export_sites(&self) {
        match export_dir() {
            Some(dir) => self.tray_export_sites_to(&dir),
            None => self.announce_export(Err(ExportError::NoFolder.into())),
        }
    }

    /// The tray's export into `dir`: never with secrets; the outcome (the file and how to
    /// import it, or what went wrong) becomes a banner message and the window opens.
    pub fn tray_export_sites_to(&self, dir: &Path) {
        let result = self.export_filezilla_sites_to(dir, false);
        self.announce_export(result);
    }

    fn announce_export(&self, result: Result<ExportView, ActionError>) {
        let notice = match result {
            Ok(v) => Notice::new(
                "notice.exported",
                &[("path", v.path), ("sites", v.sites.to_string())],
            ),
            Err(e) => {
                tracing::warn!(error = %e, "export from the tray failed");
                Notice::new("notice.export_failed", &[("detail", e.detail())])
            }
        };
        lock(&self.notices).push(notice);
        self.shell.notices_changed();
        self.shell.show_window();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_goes_to_a_folder_of_the_user() {
        if let Some(dir) = export_dir() {
            assert!(dir.is_absolute(), "{}", dir.display());
        }
    }
}
