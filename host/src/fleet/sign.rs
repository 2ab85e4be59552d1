//! Signed deploys: Ed25519 keys, the signed statement, and its check.
//!
//! Anyone who can write to Redis can write a deployment record; only the
//! holder of a deploy key can sign one. `host deploy --sign-key KEY` signs
//! the statement below, and a worker started with `--sync --trust-key PUB`
//! applies a deployment only if one of its trusted keys verifies it.
//!
//! Decisions worth knowing:
//! - **What is signed** is the plugin's name, its version label and the
//!   SHA-256 of its `.wasm` and of its manifest, as fixed lines of text
//!   ([`statement`]). Blobs are checked against those hashes when fetched,
//!   so the signature covers the exact bytes, and the name is in it so a
//!   signed `math` cannot be replayed as `billing`. Replaying an *older*
//!   signed version of the same name (a rollback) is not prevented.
//! - **Key files are one line of text**, documented in the README:
//!   `chard-ed25519-secret <base64 of the 32-byte seed>` and
//!   `chard-ed25519-public <base64 of the 32-byte key>`. The secret file is
//!   created with mode 0600 and never overwritten.
//! - **A key id** (first 12 hex digits of the public key's SHA-256) is
//!   recorded beside the signature so logs can say which key signed.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

const SECRET_TAG: &str = "chard-ed25519-secret";
const PUBLIC_TAG: &str = "chard-ed25519-public";

/// A key file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a {tag} key (expected one line `{tag} <base64>`, as `host keygen` writes)")]
    Format { path: String, tag: &'static str },
}

/// The text a deploy signature covers.
pub fn statement(name: &str, label: Option<&str>, wasm_sha256: &str, manifest_sha256: Option<&str>) -> String {
    format!(
        "chard-deploy-v1\nname={name}\nversion={}\nwasm={wasm_sha256}\nmanifest={}\n",
        label.unwrap_or(""),
        manifest_sha256.unwrap_or("")
    )
}

/// The short id logs show for a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    super::sha256_hex(key.as_bytes())[..12].to_string()
}

/// Signs `statement`; returns the signature (base64) and the key's id.
pub fn sign(key: &SigningKey, statement: &str) -> (String, String) {
    let signature = key.sign(statement.as_bytes());
    (base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()), key_id(&key.verifying_key()))
}

/// The id of the trusted key that verifies `signature` over `statement`.
pub fn verify(trusted: &[VerifyingKey], statement: &str, signature: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(signature.trim()).ok()?;
    let signature = Signature::from_slice(&bytes).ok()?;
    trusted.iter().find(|key| key.verify(statement.as_bytes(), &signature).is_ok()).map(key_id)
}

/// Makes a key pair: `<base>.key` (mode 0600, must not exist yet) and
/// `<base>.pub`. Returns both paths.
pub fn generate(base: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secret_path = base.with_extension("key");
    let public_path = base.with_extension("pub");
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
        move |source| KeyError::Io { path: path.to_path_buf(), source }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|error| KeyError::Io { path: secret_path.clone(), source: std::io::Error::other(error.to_string()) })?;
    let key = SigningKey::from_bytes(&seed);
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(io(&secret_path))?;
    writeln!(file, "{SECRET_TAG} {}", encode(&seed)).map_err(io(&secret_path))?;
    file.sync_all().map_err(io(&secret_path))?;
    std::fs::write(&public_path, format!("{PUBLIC_TAG} {}\n", encode(key.verifying_key().as_bytes()))).map_err(io(&public_path))?;
    Ok((secret_path, public_path))
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
    let seed: [u8; 32] = decode(&text, SECRET_TAG)
        .ok_or_else(|| KeyError::Format { path: path.display().to_string(), tag: SECRET_TAG })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key: a file `host keygen` wrote, or its line given inline.
pub fn read_public(source: &str) -> Result<VerifyingKey, KeyError> {
    let text = if source.starts_with(PUBLIC_TAG) {
        source.to_string()
    } else {
        std::fs::read_to_string(source).map_err(|error| KeyError::Io { path: source.into(), source: error })?
    };
    let format = || KeyError::Format { path: source.to_string(), tag: PUBLIC_TAG };
    let bytes: [u8; 32] = decode(&text, PUBLIC_TAG).ok_or_else(format)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| format())
}

fn decode(text: &str, tag: &str) -> Option<[u8; 32]> {
    let mut words = text.split_whitespace();
    (words.next()? == tag).then_some(())?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(words.next()?).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_statement_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = generate(&dir.path().join("deploy")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(generate(&dir.path().join("deploy")).is_err(), "never overwrites a key");
        let key = read_secret(&secret).unwrap();
        let trusted = vec![read_public(public.to_str().unwrap()).unwrap()];
        let text = statement("math", Some("1.0"), "aa", None);
        let (signature, id) = sign(&key, &text);
        assert_eq!(verify(&trusted, &text, &signature), Some(id));
        assert_eq!(verify(&trusted, &statement("billing", Some("1.0"), "aa", None), &signature), None, "bound to the name");
        assert_eq!(verify(&trusted, &statement("math", Some("1.0"), "aa", Some("bb")), &signature), None);
        let other = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(verify(&[other.verifying_key()], &text, &signature), None);
        assert_eq!(verify(&trusted, &text, "not base64!"), None);
        let inline = std::fs::read_to_string(&public).unwrap();
        assert_eq!(read_public(inline.trim()).unwrap(), trusted[0]);
        assert!(matches!(read_public(secret.to_str().unwrap()), Err(KeyError::Format { .. })));
    }
}
