//! Private keys: generation, the on-disk form, and the rcgen signer built from them.
//!
//! Keys are kept in the form kubeadm writes (keyutil.MarshalPrivateKeyToPEM): RSA as PKCS#1
//! "RSA PRIVATE KEY", ECDSA as SEC1 "EC PRIVATE KEY" with the named-curve parameters, so files on a
//! node look exactly like a kubeadm node's. Imported keys in PKCS#8 are converted to the same form.
//!
//! Generation uses aws-lc-rs: ring cannot generate RSA keys, and aws-lc's RSA key generation was the
//! fastest measured (see ci/bench/pki.sh and the report in the commit history).

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
};
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivateSec1KeyDer};

use super::der::{self, EC_PRIVATE_KEY, PRIVATE_KEY, PUBLIC_KEY, RSA_PRIVATE_KEY};
use crate::profile::KeyAlgorithm;

/// A private key with its algorithm and PEM text. Never printed: `Debug` shows the algorithm only.
pub struct Key {
    alg: KeyAlgorithm,
    pem: String,
    pair: KeyPair,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("pem", &"[secret key elided]")
            .finish()
    }
}

/// The signature algorithm a key of this kind signs with (Go's defaults: SHA-256 for RSA and P-256,
/// SHA-384 for P-384).
pub fn signature_algorithm(alg: KeyAlgorithm) -> &'static SignatureAlgorithm {
    match alg {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            &rcgen::PKCS_RSA_SHA256
        }
    }
}

fn is_rsa(alg: KeyAlgorithm) -> bool {
    matches!(
        alg,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
    )
}

fn rsa_algorithm(bits: usize) -> Result<KeyAlgorithm, String> {
    match bits {
        2048 => Ok(KeyAlgorithm::Rsa2048),
        3072 => Ok(KeyAlgorithm::Rsa3072),
        4096 => Ok(KeyAlgorithm::Rsa4096),
        n => Err(format!(
            "RSA key of {n} bits is not supported (use 2048, 3072 or 4096)"
        )),
    }
}

fn curve_algorithm(oid: &[u8]) -> Result<KeyAlgorithm, String> {
    if oid == der::OID_P256 {
        Ok(KeyAlgorithm::EcdsaP256)
    } else if oid == der::OID_P384 {
        Ok(KeyAlgorithm::EcdsaP384)
    } else {
        Err("EC key on a curve other than P-256 or P-384 is not supported".into())
    }
}

/// Modulus size of a PKCS#1 RSAPrivateKey.
fn pkcs1_bits(pkcs1: &[u8]) -> Result<usize, String> {
    let (seq, _) = der::expect(pkcs1, der::TAG_SEQUENCE)?;
    let (_version, rest) = der::expect(seq, der::TAG_INTEGER)?;
    let (modulus, _) = der::expect(rest, der::TAG_INTEGER)?;
    Ok(der::integer_bits(modulus))
}

/// Curve of a SEC1 ECPrivateKey, from its parameters or else from the private scalar's length.
fn sec1_algorithm(sec1: &[u8]) -> Result<KeyAlgorithm, String> {
    let (seq, _) = der::expect(sec1, der::TAG_SEQUENCE)?;
    let (_version, rest) = der::expect(seq, der::TAG_INTEGER)?;
    let (scalar, rest) = der::expect(rest, der::TAG_OCTET_STRING)?;
    if let Ok((params, _)) = der::expect(rest, der::TAG_CONTEXT_0) {
        let (oid, _) = der::expect(params, der::TAG_OID)?;
        return curve_algorithm(oid);
    }
    match scalar.len() {
        32 => Ok(KeyAlgorithm::EcdsaP256),
        48 => Ok(KeyAlgorithm::EcdsaP384),
        n => Err(format!(
            "EC private key of {n} bytes is on an unsupported curve"
        )),
    }
}

/// Splits a PKCS#8 PrivateKeyInfo into its algorithm and the inner key (PKCS#1 or SEC1).
fn pkcs8_unwrap(pkcs8: &[u8]) -> Result<(KeyAlgorithm, Vec<u8>), String> {
    let (seq, _) = der::expect(pkcs8, der::TAG_SEQUENCE)?;
    let (_version, rest) = der::expect(seq, der::TAG_INTEGER)?;
    let (alg_id, rest) = der::expect(rest, der::TAG_SEQUENCE)?;
    let (inner, _) = der::expect(rest, der::TAG_OCTET_STRING)?;
    let (oid, params) = der::expect(alg_id, der::TAG_OID)?;
    if oid == der::OID_RSA_ENCRYPTION {
        Ok((rsa_algorithm(pkcs1_bits(inner)?)?, inner.to_vec()))
    } else if oid == der::OID_EC_PUBLIC_KEY {
        let (curve, _) = der::expect(params, der::TAG_OID)?;
        Ok((curve_algorithm(curve)?, inner.to_vec()))
    } else {
        Err("PKCS#8 key is neither RSA nor ECDSA".into())
    }
}

fn ec_signing(alg: KeyAlgorithm) -> &'static aws_lc_rs::signature::EcdsaSigningAlgorithm {
    match alg {
        KeyAlgorithm::EcdsaP384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => &ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

/// SEC1 with parameters and public key, however the input EC key (SEC1 or PKCS#8) was written.
fn canonical_sec1(alg: KeyAlgorithm, der: &[u8]) -> Result<Vec<u8>, String> {
    let kp = EcdsaKeyPair::from_private_key_der(ec_signing(alg), der)
        .map_err(|e| format!("EC key rejected: {e}"))?;
    let sec1 = kp
        .private_key()
        .as_der()
        .map_err(|_| "encoding EC key".to_string())?;
    Ok(sec1.as_ref().to_vec())
}

impl Key {
    /// A fresh random key.
    pub fn generate(alg: KeyAlgorithm) -> Result<Key, String> {
        let (label, der) = match alg {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let kp = EcdsaKeyPair::generate(ec_signing(alg))
                    .map_err(|_| "generating EC key".to_string())?;
                let sec1 = kp
                    .private_key()
                    .as_der()
                    .map_err(|_| "encoding EC key".to_string())?;
                (EC_PRIVATE_KEY, sec1.as_ref().to_vec())
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let size = match alg {
                    KeyAlgorithm::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    KeyAlgorithm::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    _ => aws_lc_rs::rsa::KeySize::Rsa4096,
                };
                let kp = aws_lc_rs::rsa::KeyPair::generate(size)
                    .map_err(|_| "generating RSA key".to_string())?;
                let pkcs8: Pkcs8V1Der = kp.as_der().map_err(|_| "encoding RSA key".to_string())?;
                let (_, pkcs1) = pkcs8_unwrap(pkcs8.as_ref())?;
                (RSA_PRIVATE_KEY, pkcs1)
            }
        };
        Key::from_der(alg, label, der)
    }

    fn from_der(alg: KeyAlgorithm, label: &str, der: Vec<u8>) -> Result<Key, String> {
        let key_der = if label == RSA_PRIVATE_KEY {
            PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.as_slice()))
        } else {
            PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der.as_slice()))
        };
        let pair = KeyPair::from_der_and_sign_algo(&key_der, signature_algorithm(alg))
            .map_err(|e| format!("{} key rejected: {e}", alg.as_str()))?;
        Ok(Key {
            alg,
            pem: der::pem_encode(label, &der),
            pair,
        })
    }

    /// Parses a PEM private key in PKCS#1, SEC1 or PKCS#8 form and normalises it to kubeadm's form.
    pub fn from_pem(text: &str) -> Result<Key, String> {
        let (label, der) = der::pem_decode_one(text)?;
        match label.as_str() {
            RSA_PRIVATE_KEY => {
                Key::from_der(rsa_algorithm(pkcs1_bits(&der)?)?, RSA_PRIVATE_KEY, der)
            }
            EC_PRIVATE_KEY => {
                let alg = sec1_algorithm(&der)?;
                Key::from_der(alg, EC_PRIVATE_KEY, canonical_sec1(alg, &der)?)
            }
            PRIVATE_KEY => {
                let (alg, inner) = pkcs8_unwrap(&der)?;
                if is_rsa(alg) {
                    Key::from_der(alg, RSA_PRIVATE_KEY, inner)
                } else {
                    Key::from_der(alg, EC_PRIVATE_KEY, canonical_sec1(alg, &der)?)
                }
            }
            other => Err(format!("\"{other}\" is not an unencrypted private key")),
        }
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    /// The private key PEM (secret).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn pair(&self) -> &KeyPair {
        &self.pair
    }

    /// The public key as a certificate carries it (the BIT STRING content of SubjectPublicKeyInfo).
    pub fn public_key_raw(&self) -> &[u8] {
        self.pair.der_bytes()
    }

    /// PKIX SubjectPublicKeyInfo PEM ("PUBLIC KEY"), the form of sa.pub.
    pub fn public_pem(&self) -> String {
        der::pem_encode(PUBLIC_KEY, &self.pair.subject_public_key_info())
    }
}

/// The raw public key inside a PKIX "PUBLIC KEY" PEM (to compare sa.pub with sa.key on import).
pub fn public_pem_raw(text: &str) -> Result<Vec<u8>, String> {
    let (label, der) = der::pem_decode_one(text)?;
    if label != PUBLIC_KEY {
        return Err(format!(
            "expected a \"PUBLIC KEY\" PEM block, found \"{label}\""
        ));
    }
    let (spki, _) = der::expect(&der, der::TAG_SEQUENCE)?;
    let (_alg, rest) = der::expect(spki, der::TAG_SEQUENCE)?;
    let (bits, _) = der::expect(rest, 0x03)?;
    match bits.split_first() {
        Some((0, key)) => Ok(key.to_vec()),
        _ => Err("malformed public key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_and_reparse_every_algorithm() {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa2048,
        ] {
            let k = Key::generate(alg).unwrap();
            let want = if is_rsa(alg) {
                "-----BEGIN RSA PRIVATE KEY-----"
            } else {
                "-----BEGIN EC PRIVATE KEY-----"
            };
            assert!(k.pem().starts_with(want), "{}", alg.as_str());
            let back = Key::from_pem(k.pem()).unwrap();
            assert_eq!(back.algorithm(), alg);
            assert_eq!(back.pem(), k.pem());
            assert_eq!(public_pem_raw(&k.public_pem()).unwrap(), k.public_key_raw());
        }
    }

    #[test]
    fn pkcs8_is_normalised() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
        let back = Key::from_pem(&der::pem_encode(PRIVATE_KEY, pkcs8.as_ref())).unwrap();
        assert_eq!(back.algorithm(), KeyAlgorithm::EcdsaP384);
        assert!(back.pem().starts_with("-----BEGIN EC PRIVATE KEY-----"));
        // The SEC1 form names its curve, so openssl and Go can read it alone.
        let (_, sec1) = der::pem_decode_one(back.pem()).unwrap();
        let (seq, _) = der::expect(&sec1, der::TAG_SEQUENCE).unwrap();
        let (_, rest) = der::expect(seq, der::TAG_INTEGER).unwrap();
        let (_, rest) = der::expect(rest, der::TAG_OCTET_STRING).unwrap();
        assert!(der::expect(rest, der::TAG_CONTEXT_0).is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        let k = Key::generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert!(!format!("{k:?}").contains("BEGIN"));
    }
}
