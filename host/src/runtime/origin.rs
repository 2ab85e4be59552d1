//! Where a plugin in the folder came from: put there by a person (`local`)
//! or written by fleet sync (`deployed`).
//!
//! The worker's policy caps the two differently (see `policy`), and fleet
//! sync must never overwrite or delete a plugin a person installed. Both
//! need to know which files sync wrote, so sync records every name it
//! manages in one file in the plugin folder, [`RECORD_FILE`], before it
//! writes the plugin's files; a name not in the record is local.
//!
//! Decisions worth knowing:
//! - **The record is written first.** A crash between the record and the
//!   files leaves a name marked deployed with no files, which is harmless;
//!   the other order could leave deployed files treated as local.
//! - **A name stays deployed** until a person removes it from the record
//!   (or deletes the record): replacing a deployed `.wasm` by hand does not
//!   turn it into a local plugin, so it cannot gain the local allowance.
//! - **JSON, one object `name → {wasm, manifest}`** (SHA-256 of what sync
//!   wrote), readable and editable by hand. The folder watcher ignores it
//!   (only `.wasm` and `.toml` reload plugins).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file, in the plugin folder, that lists the names fleet sync manages.
pub const RECORD_FILE: &str = ".chard-deployed.json";

/// How a plugin reached the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Installed by hand (or `host call` on a file).
    Local,
    /// Written by fleet sync (`host run --sync`).
    Deployed,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Deployed => "deployed",
        })
    }
}

/// What sync last wrote for one name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Written {
    /// SHA-256 of the `.wasm`.
    pub wasm: String,
    /// SHA-256 of the manifest, if one was written.
    pub manifest: Option<String>,
}

/// The names fleet sync manages in one plugin folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeployRecord {
    pub plugins: BTreeMap<String, Written>,
}

impl DeployRecord {
    /// The record of `dir`; none yet is an empty record. An unreadable
    /// record is an error: guessing could hand a deployed plugin the local
    /// allowance.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        match std::fs::read(dir.join(RECORD_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {error}", dir.join(RECORD_FILE).display()))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error),
        }
    }

    /// Writes the record atomically (temporary file, then rename).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("a record serialises");
        let temporary = dir.join(format!(".{RECORD_FILE}.{}.partial", std::process::id()));
        std::fs::write(&temporary, text)?;
        std::fs::File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, dir.join(RECORD_FILE))
    }

    pub fn manages(&self, name: &str) -> bool {
        self.plugins.contains_key(name)
    }
}

/// The origin of the plugin at `wasm` (its file stem in its folder's
/// record). A record that cannot be read counts as deployed: the stricter
/// allowance.
pub fn origin_of(wasm: &Path) -> Origin {
    let (Some(dir), Some(name)) = (wasm.parent(), wasm.file_stem().and_then(|stem| stem.to_str())) else {
        return Origin::Local;
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    match DeployRecord::load(dir) {
        Ok(record) if record.manages(name) => Origin::Deployed,
        Ok(_) => Origin::Local,
        Err(error) => {
            tracing::warn!(%error, "cannot read the deploy record: treating {name} as deployed");
            Origin::Deployed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_the_record_are_deployed_the_rest_local() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(origin_of(&dir.path().join("math.wasm")), Origin::Local);
        let mut record = DeployRecord::load(dir.path()).unwrap();
        record.plugins.insert("math".into(), Written { wasm: "ab".into(), manifest: None });
        record.save(dir.path()).unwrap();
        assert_eq!(origin_of(&dir.path().join("math.wasm")), Origin::Deployed);
        assert_eq!(origin_of(&dir.path().join("faults.wasm")), Origin::Local);
        assert_eq!(DeployRecord::load(dir.path()).unwrap(), record);
        std::fs::write(dir.path().join(RECORD_FILE), "not json").unwrap();
        assert_eq!(origin_of(&dir.path().join("faults.wasm")), Origin::Deployed, "unreadable: the stricter side");
    }
}
