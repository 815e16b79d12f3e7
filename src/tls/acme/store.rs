//! Where ACME state lives: the account credentials and each certificate
//! with its key, behind [`AcmeStore`] so a shared store (Redis, for a tier of
//! instances) can stand in for the directory one instance uses.
//!
//! Keys are relative names such as `account.json` or
//! `certs/www.example.com/cert.pem`.

use futures_util::future::BoxFuture;
use std::io;
use std::path::{Path, PathBuf};

/// A small key-value store for ACME state. Values are small (a few KiB).
pub trait AcmeStore: Send + Sync + std::fmt::Debug {
    /// The value under `key`, `None` when there is none.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, io::Result<Option<Vec<u8>>>>;
    /// Stores `value` under `key`, replacing any older one atomically:
    /// a reader sees the old value or the new one, never a mix.
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
}

/// The `storage:` directory. Files are written beside their final name and
/// renamed over it; keys (certificates, the account) are readable by the
/// owner only.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: &Path) -> Self {
        FileStore {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        if key.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad storage key {key:?}"),
            ));
        }
        Ok(self.root.join(key))
    }
}

impl AcmeStore for FileStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, io::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            match tokio::fs::read(self.path(key)?).await {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let path = self.path(key)?;
            let dir = path.parent().unwrap_or(&self.root).to_path_buf();
            let value = value.to_vec();
            tokio::task::spawn_blocking(move || write_private(&dir, &path, &value))
                .await
                .map_err(io::Error::other)?
        })
    }
}

fn write_private(dir: &Path, path: &Path, value: &[u8]) -> io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(value)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_round_trip_and_keys_stay_inside() {
        let dir = std::env::temp_dir().join(format!("farmgate-acme-store-{}", std::process::id()));
        let s = FileStore::new(&dir);
        assert_eq!(s.get("certs/a/cert.pem").await.expect("get"), None);
        s.put("certs/a/cert.pem", b"one").await.expect("put");
        s.put("certs/a/cert.pem", b"two").await.expect("put");
        assert_eq!(
            s.get("certs/a/cert.pem").await.expect("get").as_deref(),
            Some(&b"two"[..])
        );
        assert!(s.put("../escape", b"x").await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
