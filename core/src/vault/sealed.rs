//! Small secrets kept outside the vault file but under its key: `seal` encrypts one
//! (XChaCha20-Poly1305, the vault's key, a `purpose` bound in as associated data so a
//! sealed value cannot be moved to another record), `unseal` gives it back. The
//! server's webhook secrets are stored this way: it must sign with them, so a hash (as
//! for API keys) cannot do.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XNonce;
use chacha20poly1305::aead::{Aead, AeadCore, OsRng, Payload};
use zeroize::Zeroizing;

use super::{Vault, VaultError, VaultKey};

/// The prefix of a sealed value, naming its format.
const SEALED_PREFIX: &str = "sealed1:";

fn aad(key: &VaultKey, purpose: &str) -> Vec<u8> {
    format!("ionport-sealed/1/{}/{purpose}", key.id()).into_bytes()
}

impl Vault {
    /// `secret` encrypted under the vault key (created when there is none yet), as text:
    /// `sealed1:` + base64url(nonce ‖ ciphertext).
    pub fn seal(&self, purpose: &str, secret: &[u8]) -> Result<String, VaultError> {
        self.ensure_home()?;
        let key = self.key(true)?.ok_or_else(|| VaultError::KeyMissing {
            vault: self.path.clone(),
            key: self.key_file(),
        })?;
        let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = aad(&key, purpose);
        let ct = key
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Corrupt {
                path: self.key_file(),
                problem: "encryption failed".into(),
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The secret `seal` sealed for `purpose`; an error when the text is not a sealed
    /// value, the key is another, or it was sealed for another purpose.
    pub fn unseal(&self, purpose: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let bad = |problem: &str| VaultError::Corrupt {
            path: self.key_file(),
            problem: format!("a sealed value for {purpose}: {problem}"),
        };
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| bad("it does not start with sealed1:"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("it is not base64url"))?;
        if bytes.len() < 24 {
            return Err(bad("it is too short"));
        }
        let key = self.key(false)?.ok_or_else(|| VaultError::KeyMissing {
            vault: self.path.clone(),
            key: self.key_file(),
        })?;
        let (nonce, ct) = bytes.split_at(24);
        let aad = aad(&key, purpose);
        key.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| bad("it does not open with this vault key"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vault::KeySource;

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_never_hold_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path(), KeySource::KeyFile);
        let sealed = vault.seal("webhook:wh_1", b"whsec_canary").unwrap();
        assert!(!sealed.contains("whsec_canary"), "{sealed}");
        assert_eq!(
            &vault.unseal("webhook:wh_1", &sealed).unwrap()[..],
            b"whsec_canary"
        );
        assert!(vault.unseal("webhook:wh_2", &sealed).is_err());
        assert!(vault.unseal("webhook:wh_1", "plain").is_err());
        let other_dir = tempfile::tempdir().unwrap();
        let other = Vault::open(other_dir.path(), KeySource::KeyFile);
        let _ = other.seal("x", b"y").unwrap();
        assert!(other.unseal("webhook:wh_1", &sealed).is_err());
    }
}
