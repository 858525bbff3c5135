//! The log's signing key: read from a file in signed-note form, or
//! generated into the data dir at first start.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use signed_note::{Note, StandardSigner, StandardVerifier};

use crate::config::ConfigError;

/// Signs checkpoints; knows its own verifier key.
pub(crate) struct LogKey {
    signer: StandardSigner,
    /// `name+keyid+base64`, as served by `GET /v1/log/key`.
    verifier_key: String,
    name: String,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("log signing key {}: {why}", path.display()))
}

impl LogKey {
    /// Reads the key at `path`, or creates it there (mode 0600, named
    /// `name`) if there is none.
    pub(crate) fn load_or_generate(path: &Path, name: &str) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(text.trim()).map_err(|why| invalid(path, why)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !signed_note::is_key_name_valid(name) {
                    return Err(ConfigError::Invalid(format!(
                        "log.origin {name:?} cannot name a key: no spaces and no '+'"
                    )));
                }
                let (skey, _) = signed_note::generate_key(&mut rand_core::OsRng, name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| invalid(path, e))?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(format!("{skey}\n").as_bytes())
                            .and_then(|()| file.sync_all())
                            .map_err(|e| invalid(path, e))?;
                        tracing::info!(path = %path.display(), "generated the log's signing key");
                        Self::parse(&skey).map_err(|why| invalid(path, why))
                    }
                    // Another process starting beside us wrote it first.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path).map_err(|e| invalid(path, e))?;
                        Self::parse(text.trim()).map_err(|why| invalid(path, why))
                    }
                    Err(e) => Err(invalid(path, e)),
                }
            }
            Err(e) => Err(invalid(path, e)),
        }
    }

    /// A key from its signed-note text `PRIVATE+KEY+name+keyid+base64`.
    pub(crate) fn parse(skey: &str) -> Result<Self, String> {
        let signer = StandardSigner::new(skey)
            .map_err(|e| format!("not a signed-note Ed25519 private key ({e})"))?;
        // signed_note does not hand out a signer's public key: derive it.
        let mut fields = skey.splitn(5, '+');
        let name = fields.nth(2).unwrap_or_default().to_owned();
        let encoded = fields.nth(1).unwrap_or_default();
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("bad base64: {e}"))?;
        let seed: [u8; 32] = key
            .get(1..)
            .and_then(|seed| seed.try_into().ok())
            .ok_or("not an Ed25519 key")?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let verifier_key = signed_note::new_ed25519_verifier_key(&name, &public);
        StandardVerifier::new(&verifier_key).map_err(|e| e.to_string())?;
        Ok(Self {
            signer,
            verifier_key,
            name,
        })
    }

    /// The verifier key, `name+keyid+base64`.
    pub(crate) fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The key's name: the checkpoints' origin.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `text` (ending in a newline) as a signed note.
    pub(crate) fn sign(&self, text: &[u8]) -> Result<String, String> {
        let mut note = Note::new(text, &[]).map_err(|e| e.to_string())?;
        note.add_sigs(&[&self.signer]).map_err(|e| e.to_string())?;
        String::from_utf8(note.to_bytes()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::proof::open_note;

    #[test]
    fn generated_keys_are_private_and_sign_what_their_verifier_key_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = LogKey::load_or_generate(&path, "test-log").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(key.verifier_key().starts_with("test-log+"));
        let again = LogKey::load_or_generate(&path, "ignored").unwrap();
        assert_eq!(again.verifier_key(), key.verifier_key());
        let note = key.sign(b"test-log\n1\nAAAA\n").unwrap();
        assert_eq!(
            open_note(note.as_bytes(), key.verifier_key()).unwrap(),
            b"test-log\n1\nAAAA\n"
        );
        let tampered = note.replacen("\n1\n", "\n2\n", 1);
        assert!(open_note(tampered.as_bytes(), key.verifier_key()).is_err());
        let other = LogKey::load_or_generate(&dir.path().join("other"), "test-log").unwrap();
        assert!(open_note(note.as_bytes(), other.verifier_key()).is_err());
        assert!(LogKey::parse("PRIVATE+KEY+x+00000000+AAAA").is_err());
    }
}
