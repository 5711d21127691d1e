//! The vault: round trip, wrong key, tampering, truncation, concurrent writers.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use ionport_core::credentials::Credentials;
use ionport_core::vault::{KeySource, Vault, VaultError};
use secrecy::{ExposeSecret, SecretString};

fn sample(dir: &Path, secret: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{secret}.ionapi"));
    std::fs::write(
        &p,
        serde_json::json!({
            "ti": "ACME_PRD", "cn": "app", "ci": "ACME_PRD~abc", "cs": secret,
            "iu": "https://mingle-ionapi.inforcloudsuite.com",
            "pu": "https://mingle-sso.inforcloudsuite.com:443/ACME_PRD/as/",
            "oa": "authorization.oauth2", "ot": "token.oauth2", "or": "revoke_token.oauth2",
            "saak": "ACME_PRD#key", "sask": format!("{secret}-sask"), "v": "1.0"
        })
        .to_string(),
    )
    .unwrap();
    p
}

fn key(b: u8) -> KeySource {
    KeySource::Text(SecretString::from(
        base64::engine::general_purpose::STANDARD.encode([b; 32]),
    ))
}

#[test]
fn round_trip_with_a_key_file_created_0600() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let vault = Vault::open(&home, KeySource::KeyFile);
    assert!(
        vault.list().unwrap().is_empty(),
        "no vault yet: empty, nothing created"
    );
    assert!(!home.exists());
    let s = vault
        .import_ionapi(sample(dir.path(), "vault-secret-1"), "prod", false)
        .unwrap();
    assert_eq!(s.tenant, "ACME_PRD");
    assert_eq!(
        s.service_url,
        "https://mingle-ionapi.inforcloudsuite.com/ACME_PRD"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(vault.key_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let e = vault.get("prod").unwrap();
    assert_eq!(
        e.credentials.client_secret.expose_secret(),
        "vault-secret-1"
    );
    assert_eq!(
        e.credentials
            .service_account
            .as_ref()
            .unwrap()
            .secret_key
            .expose_secret(),
        "vault-secret-1-sask"
    );
    let text = std::fs::read_to_string(vault.path()).unwrap();
    assert!(!text.contains("vault-secret-1") && !text.contains("ACME_PRD~abc"));
    assert!(!format!("{e:?}").contains("vault-secret-1"));

    vault
        .set_refresh_token("prod", Some(&SecretString::from("rt-1")))
        .unwrap();
    assert_eq!(
        vault
            .get("prod")
            .unwrap()
            .refresh_token
            .unwrap()
            .expose_secret(),
        "rt-1"
    );
    let again = vault.import_ionapi(sample(dir.path(), "vault-secret-2"), "prod", false);
    assert!(matches!(again, Err(VaultError::Exists { .. })));
    vault
        .import_ionapi(sample(dir.path(), "vault-secret-2"), "prod", true)
        .unwrap();
    assert_eq!(
        vault
            .get("prod")
            .unwrap()
            .credentials
            .client_secret
            .expose_secret(),
        "vault-secret-2"
    );
    assert!(vault.remove("prod").unwrap());
    assert!(!vault.remove("prod").unwrap());
    assert!(matches!(
        vault.get("prod"),
        Err(VaultError::NotFound { .. })
    ));
}

fn unchanged_after<T: std::fmt::Debug>(vault: &Vault, f: impl FnOnce() -> T) -> T {
    let before = std::fs::read(vault.path()).unwrap();
    let r = f();
    assert_eq!(
        std::fs::read(vault.path()).unwrap(),
        before,
        "the store was not overwritten"
    );
    r
}

#[test]
fn wrong_key_tampered_and_truncated_files_are_clear_errors_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let vault = Vault::open(&home, key(1));
    vault
        .import_ionapi(sample(dir.path(), "s1"), "prod", false)
        .unwrap();
    let creds = Credentials::from_ionapi_file(sample(dir.path(), "s2")).unwrap();

    // Wrong key.
    let wrong = Vault::open(&home, key(2));
    let e = unchanged_after(&vault, || wrong.put("other", &creds, false)).unwrap_err();
    assert!(matches!(e, VaultError::WrongKey { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("vault.json") && m.contains("not the key"), "{m}");
    assert!(matches!(wrong.list(), Err(VaultError::WrongKey { .. })));

    // One byte of the ciphertext changed.
    let original = std::fs::read(vault.path()).unwrap();
    let mut env: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let mut ct = base64::engine::general_purpose::STANDARD
        .decode(env["ciphertext"].as_str().unwrap())
        .unwrap();
    ct[10] ^= 0x01;
    env["ciphertext"] = base64::engine::general_purpose::STANDARD.encode(&ct).into();
    std::fs::write(vault.path(), serde_json::to_vec(&env).unwrap()).unwrap();
    let e = unchanged_after(&vault, || vault.put("other", &creds, false)).unwrap_err();
    assert!(matches!(e, VaultError::Tampered { .. }), "{e}");
    assert!(e.to_string().contains("integrity"), "{e}");
    assert!(matches!(
        vault.get("prod"),
        Err(VaultError::Tampered { .. })
    ));

    // Truncated.
    std::fs::write(vault.path(), &original[..original.len() / 2]).unwrap();
    let e = unchanged_after(&vault, || vault.remove("prod")).unwrap_err();
    assert!(matches!(e, VaultError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");

    // Empty.
    std::fs::write(vault.path(), b"").unwrap();
    let e = unchanged_after(&vault, || vault.put("x", &creds, false)).unwrap_err();
    assert!(matches!(e, VaultError::Corrupt { .. }), "{e}");

    // Restored: everything is still there.
    std::fs::write(vault.path(), &original).unwrap();
    assert_eq!(
        vault
            .get("prod")
            .unwrap()
            .credentials
            .client_secret
            .expose_secret(),
        "s1"
    );

    // A vault whose key file went missing is not replaced by a new key.
    let home2 = dir.path().join("home2");
    let v2 = Vault::open(&home2, KeySource::KeyFile);
    v2.put("a", &creds, false).unwrap();
    std::fs::remove_file(v2.key_file()).unwrap();
    let e = unchanged_after(&v2, || v2.put("b", &creds, false)).unwrap_err();
    assert!(matches!(e, VaultError::KeyMissing { .. }), "{e}");
    assert!(!v2.key_file().exists());

    // A malformed key names where it came from.
    let bad = Vault::open(&home, KeySource::Text(SecretString::from("not-a-key")));
    let e = bad.list().unwrap_err().to_string();
    assert!(e.contains("32 bytes"), "{e}");
}

#[test]
fn concurrent_writers_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let home = Arc::new(dir.path().join("home"));
    let file = Arc::new(sample(dir.path(), "concurrent"));
    // First use creates the key file; then 8 threads x 5 writes, each its own Vault
    // (its own file handles), as separate processes would.
    Vault::open(home.as_path(), KeySource::KeyFile)
        .import_ionapi(file.as_path(), "seed", false)
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let home = Arc::clone(&home);
            let file = Arc::clone(&file);
            std::thread::spawn(move || {
                let v = Vault::open(home.as_path(), KeySource::KeyFile);
                for i in 0..5 {
                    v.import_ionapi(file.as_path(), &format!("w{t}-{i}"), false)
                        .unwrap();
                    v.set_refresh_token("seed", Some(&SecretString::from(format!("rt-{t}-{i}"))))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let v = Vault::open(home.as_path(), KeySource::KeyFile);
    let names: Vec<String> = v.list().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names.len(), 41, "{names:?}");
    for t in 0..8 {
        for i in 0..5 {
            assert!(names.contains(&format!("w{t}-{i}")));
        }
    }
    // No temporary file left behind.
    let leftovers: Vec<_> = std::fs::read_dir(home.as_path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}
