//! Accounts and their root access keys.

use berth_store::{AccessKey, Scope, Store, StoreError};
use rand::Rng;

/// The ARN of an account's root user.
pub fn root_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

/// Whether `s` is a 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A new long-term access key id (`AKIA` and 16 characters, as IAM makes them).
pub fn new_access_key_id(rng: &mut impl Rng) -> String {
    let tail: String = (0..16)
        .map(|_| KEY_ALPHABET[rng.random_range(0..KEY_ALPHABET.len())] as char)
        .collect();
    format!("AKIA{tail}")
}

/// A new 40-character secret access key.
pub fn new_secret(rng: &mut impl Rng) -> String {
    (0..40)
        .map(|_| SECRET_ALPHABET[rng.random_range(0..SECRET_ALPHABET.len())] as char)
        .collect()
}

/// The account's root key, and whether it was created now.
#[derive(Debug, Clone)]
pub struct RootKey {
    pub key: AccessKey,
    pub created: bool,
}

const META_KIND: &str = "berth-meta";

/// The account this data directory serves: the one stored at first start, else `wanted`, else
/// `default`. A different `wanted` than the stored one is refused (the keys and resources
/// belong to the first).
pub fn settle_account(
    store: &Store,
    wanted: Option<&str>,
    default: &str,
) -> Result<String, AccountError> {
    store.write(|tx| -> Result<String, AccountError> {
        let scope = Scope::new("", "");
        if let Some((stored, _)) = tx.get_json::<String>(scope, META_KIND, "account")? {
            if let Some(w) = wanted
                && w != stored
            {
                return Err(AccountError::AccountMismatch {
                    stored,
                    wanted: w.to_string(),
                });
            }
            return Ok(stored);
        }
        let account = wanted.unwrap_or(default).to_string();
        tx.put(scope, META_KIND, "account", None, &account)?;
        Ok(account)
    })
}

/// Makes sure `account` has a root key: the given one (stored if new), else the existing
/// one, else a new random one.
pub fn ensure_root_key(
    store: &Store,
    account: &str,
    given: Option<(&str, &str)>,
    now_ms: i64,
) -> Result<RootKey, AccountError> {
    let principal = root_arn(account);
    store.write(|tx| -> Result<RootKey, AccountError> {
        let existing = tx.access_keys_of(account, &principal)?;
        if let Some((id, secret)) = given {
            if let Some(k) = existing.iter().find(|k| k.access_key_id == id) {
                if k.secret_access_key != secret {
                    return Err(AccountError::SecretMismatch {
                        access_key_id: id.to_string(),
                    });
                }
                return Ok(RootKey {
                    key: k.clone(),
                    created: false,
                });
            }
            if let Some(other) = tx.access_key(id)? {
                return Err(AccountError::KeyOfAnother {
                    access_key_id: id.to_string(),
                    principal: other.principal_arn,
                });
            }
            let key = AccessKey {
                access_key_id: id.to_string(),
                secret_access_key: secret.to_string(),
                account: account.to_string(),
                principal_arn: principal.clone(),
                status: "Active".into(),
                created_at_ms: now_ms,
            };
            tx.insert_access_key(&key)?;
            return Ok(RootKey { key, created: true });
        }
        if let Some(k) = existing.into_iter().find(|k| k.status == "Active") {
            return Ok(RootKey {
                key: k,
                created: false,
            });
        }
        let mut rng = rand::rng();
        let key = AccessKey {
            access_key_id: new_access_key_id(&mut rng),
            secret_access_key: new_secret(&mut rng),
            account: account.to_string(),
            principal_arn: principal.clone(),
            status: "Active".into(),
            created_at_ms: now_ms,
        };
        tx.insert_access_key(&key)?;
        Ok(RootKey { key, created: true })
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("this data directory belongs to account {stored}, not {wanted}")]
    AccountMismatch { stored: String, wanted: String },
    #[error("root access key {access_key_id} exists with another secret")]
    SecretMismatch { access_key_id: String },
    #[error("access key {access_key_id} belongs to {principal}")]
    KeyOfAnother {
        access_key_id: String,
        principal: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_is_created_once_and_kept() {
        let store = Store::open_in_memory().unwrap();
        let a = settle_account(&store, None, "000000000000").unwrap();
        assert_eq!(a, "000000000000");
        assert!(matches!(
            settle_account(&store, Some("111111111111"), "x"),
            Err(AccountError::AccountMismatch { .. })
        ));
        let k1 = ensure_root_key(&store, &a, None, 1).unwrap();
        assert!(
            k1.created
                && k1.key.access_key_id.starts_with("AKIA")
                && k1.key.secret_access_key.len() == 40
        );
        let k2 = ensure_root_key(&store, &a, None, 2).unwrap();
        assert!(!k2.created);
        assert_eq!(k1.key.access_key_id, k2.key.access_key_id);
        let given =
            ensure_root_key(&store, &a, Some(("AKIATESTTESTTESTTEST", "s3cret")), 3).unwrap();
        assert!(given.created);
        assert!(matches!(
            ensure_root_key(&store, &a, Some(("AKIATESTTESTTESTTEST", "other")), 4),
            Err(AccountError::SecretMismatch { .. })
        ));
    }
}
