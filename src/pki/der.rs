//! The little DER and PEM handling the key formats need: PEM blocks in and out, and enough of a DER
//! reader to tell PKCS#1, SEC1 and PKCS#8 keys apart and unwrap PKCS#8. Certificates are parsed with
//! x509-parser; this is only for private keys, whose formats x509-parser does not cover.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub const CERTIFICATE: &str = "CERTIFICATE";
pub const RSA_PRIVATE_KEY: &str = "RSA PRIVATE KEY";
pub const EC_PRIVATE_KEY: &str = "EC PRIVATE KEY";
pub const PRIVATE_KEY: &str = "PRIVATE KEY";
pub const PUBLIC_KEY: &str = "PUBLIC KEY";

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_OID: u8 = 0x06;
pub const TAG_SEQUENCE: u8 = 0x30;
/// `[0]` constructed (SEC1 `parameters`).
pub const TAG_CONTEXT_0: u8 = 0xa0;

/// DER content of the OIDs kimage needs to recognise.
pub const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// PEM with 64-column base64 lines and LF line ends, the form Go's encoding/pem and openssl write.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Every PEM block in `text`, in order, as (label, DER). Text outside blocks is ignored (openssl
/// writes "Bag Attributes" and cfssl nothing, but people paste comments).
pub fn pem_decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                return Err(format!(
                    "encrypted or annotated PEM block \"{label}\" is not supported"
                ));
            }
            b64.push_str(l);
        }
        if !closed {
            return Err(format!("PEM block \"{label}\" has no END line"));
        }
        let der = STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("PEM block \"{label}\": {e}"))?;
        out.push((label.to_string(), der));
    }
    Ok(out)
}

/// The single PEM block in `text`.
pub fn pem_decode_one(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut blocks = pem_decode_all(text)?;
    match blocks.len() {
        0 => Err("no PEM block found".into()),
        1 => Ok(blocks.remove(0)),
        n => Err(format!("expected one PEM block, found {n}")),
    }
}

/// One DER element: its tag, its content, and what follows it.
pub fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "malformed DER".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Reads an element that must have `tag`.
pub fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (t, content, rest) = read_tlv(input)?;
    if t != tag {
        return Err(format!(
            "malformed DER: expected tag 0x{tag:02x}, found 0x{t:02x}"
        ));
    }
    Ok((content, rest))
}

/// Encodes a DER length.
#[cfg(test)]
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one DER element.
#[cfg(test)]
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// Bit length of a DER INTEGER's content (unsigned magnitude).
pub fn integer_bits(content: &[u8]) -> usize {
    let digits: &[u8] = match content.iter().position(|b| *b != 0) {
        Some(i) => &content[i..],
        None => return 0,
    };
    digits.len() * 8 - digits[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let (label, back) = pem_decode_one(&pem).unwrap();
        assert_eq!(label, "CERTIFICATE");
        assert_eq!(back, der);
        let crlf = pem.replace('\n', "\r\n");
        assert_eq!(pem_decode_one(&crlf).unwrap().1, der);
    }

    #[test]
    fn der_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70000] {
            let content = vec![7u8; len];
            let enc = tlv(TAG_OCTET_STRING, &content);
            let (tag, c, rest) = read_tlv(&enc).unwrap();
            assert_eq!((tag, c.len(), rest.len()), (TAG_OCTET_STRING, len, 0));
        }
        assert!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(read_tlv(&[0x30, 0x05, 1]).is_err());
    }

    #[test]
    fn bits() {
        assert_eq!(integer_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(integer_bits(&[0x01]), 1);
        assert_eq!(integer_bits(&[0x00]), 0);
    }
}
