//! KMS envelope for a tenant's secrets: the platform access token (KMS `Encrypt`) and the pepper, the
//! key of the tenant's keyed PII hashes (a KMS `GenerateDataKey` 256-bit data key). Only ciphertexts are stored. Each is bound
//! to its tenant and its purpose by the encryption context `{"tenant_id": ..., "purpose": ...}`, so a
//! ciphertext copied into another tenant's record (or used for another purpose) does not decrypt
//! (<https://docs.aws.amazon.com/kms/latest/developerguide/encrypt_context.html>).
//!
//! [`Peppers`] decrypts a tenant's pepper on first use and keeps the plaintext in memory of the warm
//! Lambda for a bounded time ([`PEPPER_TTL`], evicted on read once expired, and at once when
//! admission sees the tenant `deleting`), wiped when it leaves the cache ([`PepperCache`]).

use std::future::Future;

use std::time::Duration;

use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::identity::IdentitySecret;
use crate::oauth::Secret;
use crate::pii::Pepper;

/// The encryption-context purpose of a platform access token.
pub const ACCESS_TOKEN_PURPOSE: &str = "platform-access-token";
/// The encryption-context purpose of a tenant's pepper (the value is the stored context, unchanged).
pub const PEPPER_PURPOSE: &str = "pii-hash-key";
/// The encryption-context purpose of a tenant's identity secret (the key of its identity tokens).
pub const IDENTITY_SECRET_PURPOSE: &str = "identity-secret";
/// How long a decrypted pepper stays in a warm Lambda's memory, at most: 5 minutes, the time within
/// which the README promises that a deleted tenant's pepper has left every function.
pub const PEPPER_TTL: Duration = Duration::from_secs(300);
/// Most peppers held at once by one [`Peppers`] (expired ones go first, then the oldest).
pub const PEPPER_CACHE_MAX: usize = 1024;

/// A KMS failure. The text is for logs; none of it carries a plaintext.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// KMS refused: the ciphertext is not for this tenant or purpose (wrong encryption context), not
    /// ours, damaged, or the key is disabled or not ours to use.
    #[error("KMS refused the operation: {0}")]
    Refused(String),
    /// KMS could not be reached or failed (time-out, throttling, internal error); safe to retry.
    #[error("KMS unavailable: {0}")]
    Unavailable(String),
    /// KMS answered without the expected field, or a data key of the wrong size.
    #[error("unexpected KMS answer: {0}")]
    Malformed(&'static str),
    /// The tenant record holds no ciphertext for this purpose.
    #[error("the tenant has no {0}")]
    Missing(&'static str),
}

fn classify<E, R>(e: SdkError<E, R>) -> KmsError
where
    E: std::error::Error + aws_sdk_kms::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string);
    let text = DisplayErrorContext(&e).to_string();
    match code.as_deref() {
        Some(
            "InvalidCiphertextException"
            | "IncorrectKeyException"
            | "AccessDeniedException"
            | "DisabledException"
            | "KMSInvalidStateException"
            | "NotFoundException"
            | "InvalidKeyUsageException",
        ) => KmsError::Refused(text),
        _ => KmsError::Unavailable(text),
    }
}

/// Wipes a plaintext buffer.
fn wipe(mut bytes: Vec<u8>) {
    zeroize::Zeroize::zeroize(&mut bytes);
}

/// The service key and the KMS client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Kms {
    client: Client,
    key_id: String,
}

impl Kms {
    /// KMS over `client` with the service key `key_id` (id, ARN or alias; `KMS_KEY_ID`).
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts a platform access token for `tenant_id` (context `purpose = platform-access-token`).
    /// Returns the ciphertext, the only form to store.
    ///
    /// # Errors
    /// [`KmsError::Refused`], [`KmsError::Unavailable`], [`KmsError::Malformed`].
    pub async fn seal_access_token(
        &self,
        tenant_id: &str,
        token: &Secret,
    ) -> Result<Vec<u8>, KmsError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(token.expose().as_bytes()))
            .encryption_context("tenant_id", tenant_id)
            .encryption_context("purpose", ACCESS_TOKEN_PURPOSE)
            .send()
            .await
            .map_err(classify)?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or(KmsError::Malformed("Encrypt without CiphertextBlob"))
    }

    /// Decrypts `tenant_id`'s platform access token. Fails for another tenant's ciphertext.
    ///
    /// # Errors
    /// [`KmsError::Refused`] (wrong tenant or purpose), [`KmsError::Unavailable`], [`KmsError::Malformed`].
    pub async fn open_access_token(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<Secret, KmsError> {
        let plain = self
            .decrypt(tenant_id, ACCESS_TOKEN_PURPOSE, ciphertext)
            .await?;
        let token = String::from_utf8(plain).map_err(|e| {
            wipe(e.into_bytes());
            KmsError::Malformed("an access token that is not UTF-8")
        })?;
        Ok(Secret::new(token))
    }

    /// A new 256-bit pepper for `tenant_id`, from `GenerateDataKey` (context
    /// `purpose = pii-hash-key`). Returns only its ciphertext; the plaintext that KMS also returns is wiped
    /// at once.
    ///
    /// # Errors
    /// [`KmsError::Refused`], [`KmsError::Unavailable`], [`KmsError::Malformed`].
    pub async fn new_pepper(&self, tenant_id: &str) -> Result<Vec<u8>, KmsError> {
        let (ciphertext, plain) = self.generate_data_key(tenant_id, PEPPER_PURPOSE).await?;
        wipe(plain);
        Ok(ciphertext)
    }

    /// `GenerateDataKey` (AES-256) under `tenant_id`'s encryption context for `purpose`: the ciphertext
    /// and the plaintext, which the caller wipes.
    async fn generate_data_key(
        &self,
        tenant_id: &str,
        purpose: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), KmsError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context("tenant_id", tenant_id)
            .encryption_context("purpose", purpose)
            .send()
            .await
            .map_err(classify)?;
        let plain = out
            .plaintext
            .map(Blob::into_inner)
            .ok_or(KmsError::Malformed("GenerateDataKey without Plaintext"))?;
        match out.ciphertext_blob {
            Some(c) => Ok((c.into_inner(), plain)),
            None => {
                wipe(plain);
                Err(KmsError::Malformed(
                    "GenerateDataKey without CiphertextBlob",
                ))
            }
        }
    }

    /// Decrypts `tenant_id`'s pepper.
    ///
    /// # Errors
    /// [`KmsError::Refused`] (wrong tenant or purpose), [`KmsError::Unavailable`], [`KmsError::Malformed`]
    /// (not 32 bytes).
    pub async fn open_pepper(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<Pepper, KmsError> {
        let plain = self.decrypt(tenant_id, PEPPER_PURPOSE, ciphertext).await?;
        let key = Pepper::from_slice(&plain)
            .map_err(|_| KmsError::Malformed("a pepper that is not 32 bytes"));
        wipe(plain);
        key
    }

    /// A new 256-bit identity secret for `tenant_id`, from `GenerateDataKey` (context `purpose =
    /// identity-secret`): its ciphertext, to store, and its plaintext, to show the merchant once.
    ///
    /// # Errors
    /// [`KmsError::Refused`], [`KmsError::Unavailable`], [`KmsError::Malformed`].
    pub async fn new_identity_secret(
        &self,
        tenant_id: &str,
    ) -> Result<(Vec<u8>, IdentitySecret), KmsError> {
        let (ciphertext, plain) = self
            .generate_data_key(tenant_id, IDENTITY_SECRET_PURPOSE)
            .await?;
        let secret = IdentitySecret::from_slice(&plain)
            .map_err(|_| KmsError::Malformed("an identity secret that is not 32 bytes"));
        wipe(plain);
        Ok((ciphertext, secret?))
    }

    /// Decrypts `tenant_id`'s identity secret.
    ///
    /// # Errors
    /// [`KmsError::Refused`] (wrong tenant or purpose), [`KmsError::Unavailable`], [`KmsError::Malformed`]
    /// (not 32 bytes).
    pub async fn open_identity_secret(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<IdentitySecret, KmsError> {
        let plain = self
            .decrypt(tenant_id, IDENTITY_SECRET_PURPOSE, ciphertext)
            .await?;
        let secret = IdentitySecret::from_slice(&plain)
            .map_err(|_| KmsError::Malformed("an identity secret that is not 32 bytes"));
        wipe(plain);
        secret
    }

    async fn decrypt(
        &self,
        tenant_id: &str,
        purpose: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context("tenant_id", tenant_id)
            .encryption_context("purpose", purpose)
            .send()
            .await
            .map_err(classify)?;
        out.plaintext
            .map(Blob::into_inner)
            .ok_or(KmsError::Malformed("Decrypt without Plaintext"))
    }
}

mod cache;
pub use cache::{KeyCache, PepperCache, Peppers, TenantSecret, Unsealed};

/// Seals a tenant's new secrets (the port of an install): only ciphertexts come back.
pub trait SecretSealer: Send + Sync {
    /// The ciphertext of `token`, `tenant_id`'s platform access token.
    ///
    /// # Errors
    /// [`KmsError::Refused`], [`KmsError::Unavailable`], [`KmsError::Malformed`].
    fn seal_access_token(
        &self,
        tenant_id: &str,
        token: &Secret,
    ) -> impl Future<Output = Result<Vec<u8>, KmsError>> + Send;

    /// The ciphertext of a new 256-bit pepper for `tenant_id` (its plaintext is never kept).
    ///
    /// # Errors
    /// [`KmsError::Refused`], [`KmsError::Unavailable`], [`KmsError::Malformed`].
    fn new_pepper(&self, tenant_id: &str)
        -> impl Future<Output = Result<Vec<u8>, KmsError>> + Send;

    /// A new 256-bit identity secret for `tenant_id`: its ciphertext (to store) and its plaintext (to
    /// show the merchant once).
    ///
    /// # Errors
    /// [`KmsError::Refused`], [`KmsError::Unavailable`], [`KmsError::Malformed`].
    fn new_identity_secret(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<(Vec<u8>, IdentitySecret), KmsError>> + Send;
}

impl SecretSealer for Kms {
    async fn seal_access_token(
        &self,
        tenant_id: &str,
        token: &Secret,
    ) -> Result<Vec<u8>, KmsError> {
        Kms::seal_access_token(self, tenant_id, token).await
    }
    async fn new_pepper(&self, tenant_id: &str) -> Result<Vec<u8>, KmsError> {
        Kms::new_pepper(self, tenant_id).await
    }
    async fn new_identity_secret(
        &self,
        tenant_id: &str,
    ) -> Result<(Vec<u8>, IdentitySecret), KmsError> {
        Kms::new_identity_secret(self, tenant_id).await
    }
}

#[cfg(feature = "test-doubles")]
pub use memory::MemorySealer;

#[cfg(feature = "test-doubles")]
mod memory {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::{KmsError, Secret, SecretSealer};

    /// A test double of [`SecretSealer`]: "ciphertexts" name the purpose, the tenant and a counter,
    /// never the plaintext. With `fail` set, KMS is unavailable.
    #[derive(Debug, Default)]
    pub struct MemorySealer {
        /// When set, every call fails as [`KmsError::Unavailable`].
        pub fail: AtomicBool,
        count: AtomicU64,
    }

    impl MemorySealer {
        fn seal(&self, purpose: &str, tenant_id: &str) -> Result<Vec<u8>, KmsError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(KmsError::Unavailable("injected KMS failure".into()));
            }
            let n = self.count.fetch_add(1, Ordering::SeqCst);
            Ok(format!("sealed:{purpose}:{tenant_id}:{n}").into_bytes())
        }
    }

    impl SecretSealer for MemorySealer {
        async fn seal_access_token(
            &self,
            tenant_id: &str,
            _token: &Secret,
        ) -> Result<Vec<u8>, KmsError> {
            self.seal(super::ACCESS_TOKEN_PURPOSE, tenant_id)
        }
        async fn new_pepper(&self, tenant_id: &str) -> Result<Vec<u8>, KmsError> {
            self.seal(super::PEPPER_PURPOSE, tenant_id)
        }
        /// The secret is [`crate::identity::derived_identity_secret`] of the tenant, so tests that
        /// read secrets with [`crate::identity::DerivedIdentitySecrets`] sign valid tokens.
        async fn new_identity_secret(
            &self,
            tenant_id: &str,
        ) -> Result<(Vec<u8>, crate::identity::IdentitySecret), KmsError> {
            let sealed = self.seal(super::IDENTITY_SECRET_PURPOSE, tenant_id)?;
            Ok((sealed, crate::identity::derived_identity_secret(tenant_id)))
        }
    }
}

#[cfg(all(test, feature = "test-doubles"))]
mod tests;
