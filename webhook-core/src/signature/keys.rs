//! What a source verifies with: its shared secrets (HMAC keys, tokens, passwords) and, for the
//! vendors that sign with a private key of their own, their public keys.
//!
//! Public keys are read once, when the sources file is read, so a key that cannot be used stops
//! the service at start and a request costs one signature check, not a key parse. The
//! asymmetric parts are RustCrypto's and dalek's: Ed25519 (`ed25519-dalek`, strict
//! verification: no malleable signatures, no small-order keys), ECDSA P-256 with SHA-256
//! (`p256`), RSASSA-PKCS1-v1_5 with SHA-256 (`rsa`) and X.509 certificates (`x509-cert`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use sha2::Sha256;
use x509_cert::der::{DecodePem as _, Encode as _};

use crate::config::Secret;

/// Everything a source verifies with.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Shared secrets, in order; the first that verifies is reported.
    pub secrets: Vec<Secret>,
    /// The vendor's public keys, in order.
    pub public: Vec<PublicKey>,
}

impl Keys {
    /// Shared secrets only.
    pub fn secrets(secrets: &[Secret]) -> Self {
        Self {
            secrets: secrets.to_vec(),
            public: Vec::new(),
        }
    }
}

/// A vendor's public key, parsed.
#[derive(Clone)]
pub enum PublicKey {
    /// Ed25519 (Discord, Standard Webhooks' `v1a`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA over P-256 with SHA-256 (SendGrid).
    P256(p256::ecdsa::VerifyingKey),
    /// RSA PKCS#1 v1.5 with SHA-256, from a certificate (PayPal).
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ed25519(_) => "PublicKey::Ed25519",
            Self::P256(_) => "PublicKey::P256",
            Self::Rsa(_) => "PublicKey::Rsa",
        })
    }
}

impl PublicKey {
    /// An Ed25519 key as 64 hex digits (Discord's "public key").
    pub fn ed25519_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "an Ed25519 public key is 64 hex digits".to_owned())?;
        Self::ed25519(&bytes)
    }

    /// An Ed25519 key as `whpk_` and base64 (Standard Webhooks).
    pub fn ed25519_whpk(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix("whpk_")
            .ok_or_else(|| "a Standard Webhooks public key starts with whpk_".to_owned())?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| "a Standard Webhooks public key is whpk_ followed by base64".to_owned())?;
        Self::ed25519(&bytes)
    }

    fn ed25519(bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("an Ed25519 public key is 32 bytes, not {}", bytes.len()))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self::Ed25519)
            .map_err(|_| "not a point of Ed25519".to_owned())
    }

    /// A P-256 key as base64 of its DER SubjectPublicKeyInfo (SendGrid's "verification key").
    pub fn p256_spki_base64(text: &str) -> Result<Self, String> {
        let der = BASE64
            .decode(text.trim())
            .map_err(|_| "an ECDSA public key is base64 of its DER SubjectPublicKeyInfo".to_owned())?;
        p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map(Self::P256)
            .map_err(|error| format!("not a P-256 public key ({error})"))
    }

    /// The RSA key of a PEM certificate (PayPal's signing certificate), with the end of the
    /// certificate's validity as Unix time.
    pub fn rsa_certificate_pem(pem: &str) -> Result<(Self, i64), String> {
        let certificate =
            x509_cert::Certificate::from_pem(pem.trim()).map_err(|error| format!("not a PEM certificate ({error})"))?;
        let tbs = certificate.tbs_certificate();
        let not_after = tbs.validity().not_after.to_unix_duration().as_secs();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|error| format!("the certificate's key cannot be read ({error})"))?;
        let key = rsa::PublicKey::from_public_key_der(&spki)
            .map_err(|error| format!("the certificate's key is not an RSA key ({error})"))?;
        Ok((
            Self::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key))),
            i64::try_from(not_after).unwrap_or(i64::MAX),
        ))
    }

    /// Whether `signature` (in the encoding the vendor sends: Ed25519 64 raw bytes, ECDSA DER,
    /// RSA raw) signs the concatenation of `parts`.
    pub fn verifies(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        let message = parts.concat();
        match self {
            Self::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(&message, &signature).is_ok()),
            Self::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|signature| key.verify(&message, &signature).is_ok()),
            Self::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|signature| rsa::signature::Verifier::verify(key.as_ref(), &message, &signature).is_ok()),
        }
    }
}

/// The first public key that verifies `signature` over `parts`, as a [`super::Verified`].
pub(crate) fn check_public(
    keys: &[PublicKey],
    parts: &[&[u8]],
    signatures: &[Vec<u8>],
) -> Result<super::Verified, super::Rejection> {
    if signatures.is_empty() {
        return Err(super::Rejection::Malformed);
    }
    if keys.is_empty() {
        return Err(super::Rejection::Mismatch);
    }
    keys.iter()
        .position(|key| signatures.iter().any(|signature| key.verifies(parts, signature)))
        .map(|secret_index| super::Verified { secret_index })
        .ok_or(super::Rejection::Mismatch)
}

/// Signing with a private key, for loadgen and the tests: the vendor's side of each scheme.
pub mod private {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use ed25519_dalek::Signer as _;
    use p256::pkcs8::DecodePrivateKey as _;

    /// An Ed25519 signature over `message` by the key whose 32-byte seed is `seed_hex` (hex)
    /// or `whsk_<base64>` (Standard Webhooks).
    pub fn ed25519(seed: &str, message: &[u8]) -> Option<Vec<u8>> {
        let bytes = match seed.trim().strip_prefix("whsk_") {
            Some(encoded) => BASE64.decode(encoded).ok()?,
            None => hex::decode(seed.trim()).ok()?,
        };
        let seed: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Some(key.sign(message).to_bytes().to_vec())
    }

    /// An ECDSA P-256 SHA-256 signature, DER, by the PKCS#8 PEM key `pem`.
    pub fn p256(pem: &str, message: &[u8]) -> Option<Vec<u8>> {
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem.trim()).ok()?;
        let signature: p256::ecdsa::Signature = key.sign(message);
        Some(signature.to_der().as_bytes().to_vec())
    }

    /// An RSA PKCS#1 v1.5 SHA-256 signature by the PKCS#8 PEM key `pem`.
    pub fn rsa(pem: &str, message: &[u8]) -> Option<Vec<u8>> {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let key = rsa::PrivateKey::from_pkcs8_pem(pem.trim()).ok()?;
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
        Some(signer.sign(message).to_vec())
    }
}
