//! On-disk cache of compiled plugins.
//!
//! Compiling a large component takes seconds (a Python plugin is ~18 MiB of
//! wasm); loading its native code takes milliseconds. Entries are keyed by
//! the SHA-256 of the `.wasm` and by the engine's compatibility hash (wasmtime
//! version and every setting that affects code), so an upgrade or a config
//! change never loads stale code.
//!
//! An entry is exactly what `Component::serialize` wrote, loaded with
//! `Component::deserialize_file`: wasmtime then maps the file instead of
//! copying it, and maps a plugin's initial memory (the 10-20 MiB heap
//! snapshot of a Python or JavaScript plugin) straight from the file too.
//! Reading the entry into a buffer instead cost most of a worker's start-up:
//! the kernel zeroed the buffer's pages, wasmtime copied it, then wrote the
//! memory image into a memfd (measured with `perf`, `bench/startup.py`). The
//! price: an entry must never be written in place while a worker runs, as
//! its jobs' memory is mapped from it. Writes go to a temporary file renamed
//! into place (also so that concurrent workers sharing a folder never read
//! half an entry), so a name always holds the same bytes.
//!
//! The CRC-32 of the entry is part of its name and checked before wasmtime
//! sees the bytes: a truncated or corrupted file is recompiled, never
//! trusted. (Until start-up was measured the check was a SHA-256 stored in
//! the file, ~50 ms of CPU per start for the four example plugins; the check
//! guards against accidents, not against someone who can write the cache
//! folder, who could as well write a matching SHA-256.)

use std::hash::{Hash, Hasher};
use std::io::Read as _;
use std::path::{Path, PathBuf};

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

    /// The cached component for the `.wasm` whose SHA-256 is `wasm_digest`,
    /// or `compile()`'s, which is then cached.
    pub fn load_or_compile(
        &self,
        wasm_digest: &[u8],
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        // Entry names: `<key>.crc-<CRC-32 of the file, 8 hex digits>.cwasm`.
        // (Older workers' `<key>.cwasm`, with a SHA-256 inside, are left
        // alone for them.)
        let key = format!("{}-{}", hex(wasm_digest), self.engine_hash);
        if let Some(component) = self.find(&key).and_then(|(path, crc)| self.load(&path, crc)) {
            return Ok(component);
        }
        let component = compile()?;
        if let Err(error) = self.store(&key, &component) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write the compile cache; continuing without it");
        }
        Ok(component)
    }

    /// The entry for `key` and the CRC-32 its name gives.
    fn find(&self, key: &str) -> Option<(PathBuf, u32)> {
        let prefix = format!("{key}.crc-");
        std::fs::read_dir(&self.dir).ok()?.flatten().find_map(|entry| {
            let name = entry.file_name();
            let crc = name.to_str()?.strip_prefix(&prefix)?.strip_suffix(".cwasm")?;
            Some((entry.path(), u32::from_str_radix(crc, 16).ok()?))
        })
    }

    fn load(&self, path: &Path, crc: u32) -> Option<Component> {
        match file_crc32(path) {
            Ok(actual) if actual == crc => {}
            Ok(_) => {
                tracing::warn!(entry = %path.display(), "compile cache entry is corrupt; recompiling");
                return None;
            }
            Err(error) => {
                tracing::warn!(entry = %path.display(), %error, "cannot read a compile cache entry; recompiling");
                return None;
            }
        }
        // SAFETY: the file is exactly what `Component::serialize` wrote for
        // this engine configuration (checked by the key and the checksum),
        // and is never written in place (see the module doc).
        match unsafe { Component::deserialize_file(&self.engine, path) } {
            Ok(component) => {
                tracing::debug!(entry = %path.display(), "compiled plugin loaded from cache");
                Some(component)
            }
            Err(error) => {
                tracing::warn!(entry = %path.display(), %error, "compile cache entry unusable; recompiling");
                None
            }
        }
    }

    fn store(&self, key: &str, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let code = component.serialize()?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&code);
        let path = self.dir.join(format!("{key}.crc-{:08x}.cwasm", hasher.finalize()));
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, &code)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }
}

/// CRC-32 of a file, read through one small buffer (a buffer the size of
/// the file would have its pages zeroed first, see the module doc).
fn file_crc32(path: &Path) -> std::io::Result<u32> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buffer[..read]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
