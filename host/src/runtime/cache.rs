//! On-disk cache of compiled plugins.
//!
//! Compiling a large component takes seconds (a Python plugin is ~18 MiB of
//! wasm); loading its native code takes milliseconds. Entries are keyed by
//! the SHA-256 of the `.wasm` and by the engine's compatibility hash (wasmtime
//! version and every setting that affects code), so an upgrade or a config
//! change never loads stale code. Each entry is stored with the SHA-256 of
//! its own bytes, checked before wasmtime sees them: a truncated or corrupted
//! file is recompiled, never trusted. Writes go to a temporary file renamed
//! into place, so concurrent workers sharing a cache folder never read half
//! an entry.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct CompileCache {
    dir: PathBuf,
    engine: Engine,
    engine_hash: String,
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: &Path) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir: dir.to_path_buf(), engine: engine.clone(), engine_hash: format!("{:016x}", hasher.finish()) }
    }

    /// The cached component for `wasm`, or `compile()`'s, which is then cached.
    pub fn load_or_compile(
        &self,
        wasm: &[u8],
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        let key = format!("{}-{}", hex(&Sha256::digest(wasm)), self.engine_hash);
        let path = self.dir.join(format!("{key}.cwasm"));
        if let Some(component) = self.load(&path) {
            tracing::debug!(entry = %path.display(), "compiled plugin loaded from cache");
            return Ok(component);
        }
        let component = compile()?;
        if let Err(error) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write the compile cache; continuing without it");
        }
        Ok(component)
    }

    fn load(&self, path: &Path) -> Option<Component> {
        let bytes = std::fs::read(path).ok()?;
        let (checksum, code) = bytes.split_at_checked(32)?;
        if Sha256::digest(code).as_slice() != checksum {
            tracing::warn!(entry = %path.display(), "compile cache entry is corrupt; recompiling");
            return None;
        }
        // SAFETY: the bytes are exactly what `Component::serialize` wrote for
        // this engine configuration (checked by the key and the checksum).
        match unsafe { Component::deserialize(&self.engine, code) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(entry = %path.display(), %error, "compile cache entry unusable; recompiling");
                None
            }
        }
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let code = component.serialize()?;
        let mut bytes = Vec::with_capacity(code.len() + 32);
        bytes.extend_from_slice(&Sha256::digest(&code));
        bytes.extend_from_slice(&code);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, &bytes)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
