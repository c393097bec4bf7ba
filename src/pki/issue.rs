//! Turning a CertSpec into an X.509 certificate the way kubeadm's pkiutil does: subject O then CN,
//! CA key usage digitalSignature+keyEncipherment+keyCertSign with CA:TRUE, leaf key usage
//! digitalSignature+keyEncipherment with CA:FALSE and the spec's extended key usages, DNS then IP
//! SANs, a random serial in [1, 2^63-1), subject key identifier everywhere and authority key
//! identifier on leaves.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::Key;
use super::spec::{CertSpec, Usage};

/// OID of the X.520 organizationName attribute (for a second and further O value; rcgen's
/// DistinguishedName holds one value per attribute type).
const OID_ORGANIZATION: &[u64] = &[2, 5, 4, 10];

/// Go's encoding choice: PrintableString when every character allows it, else UTF8String.
fn dn_value(s: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(s) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(s.to_string()),
    }
}

fn params(
    spec: &CertSpec,
    serial: u64,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for (i, o) in spec.organizations.iter().enumerate() {
        let ty = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(OID_ORGANIZATION.to_vec())
        };
        dn.push(ty, dn_value(o));
    }
    dn.push(DnType::CommonName, dn_value(&spec.common_name));
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from_slice(&serial_bytes(serial)));
    p.not_before = not_before;
    p.not_after = not_after;
    let mut sans = Vec::new();
    for d in &spec.dns_names {
        let name = d
            .clone()
            .try_into()
            .map_err(|e| format!("DNS name {d:?}: {e}"))?;
        sans.push(SanType::DnsName(name));
    }
    for ip in &spec.ip_addresses {
        sans.push(SanType::IpAddress(*ip));
    }
    p.subject_alt_names = sans;
    if spec.usage.is_ca() {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if spec.usage.server_auth() {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.usage.client_auth() {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
    }
    Ok(p)
}

/// Big-endian serial without leading zero bytes.
pub fn serial_bytes(serial: u64) -> Vec<u8> {
    let b = serial.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(7);
    b[skip..].to_vec()
}

/// A random serial, uniform in [1, 2^63-1) like kubeadm's.
pub fn random_serial() -> Result<u64, String> {
    loop {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b)
            .map_err(|_| "reading the system random generator".to_string())?;
        let v = u64::from_be_bytes(b) & (u64::MAX >> 1);
        if v != 0 && v != u64::MAX >> 1 {
            return Ok(v);
        }
    }
}

/// A self-signed CA certificate (DER).
pub fn self_signed(
    spec: &CertSpec,
    key: &Key,
    serial: u64,
    nb: OffsetDateTime,
    na: OffsetDateTime,
) -> Result<Vec<u8>, String> {
    debug_assert!(matches!(spec.usage, Usage::Ca));
    let p = params(spec, serial, nb, na)?;
    let cert = p
        .self_signed(key.pair())
        .map_err(|e| format!("signing: {e}"))?;
    Ok(cert.der().to_vec())
}

/// A CA, ready to sign: its certificate and key.
pub struct Signer<'a> {
    issuer: Issuer<'a, &'a rcgen::KeyPair>,
    subject_raw: Vec<u8>,
    has_key_id: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl<'a> Signer<'a> {
    pub fn new(ca_der: &[u8], key: &'a Key) -> Result<Signer<'a>, String> {
        let (_, x) = X509Certificate::from_der(ca_der)
            .map_err(|e| format!("parsing CA certificate: {e}"))?;
        let has_key_id = x.iter_extensions().any(|e| {
            matches!(
                e.parsed_extension(),
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(_)
            )
        });
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca_der), key.pair())
            .map_err(|e| format!("CA certificate cannot sign with rcgen: {e}"))?;
        Ok(Signer {
            issuer,
            subject_raw: x.tbs_certificate.subject.as_raw().to_vec(),
            has_key_id,
            not_before: x.validity().not_before.to_datetime(),
            not_after: x.validity().not_after.to_datetime(),
        })
    }

    /// A leaf certificate (DER) for `key`, signed by this CA.
    pub fn sign(
        &self,
        spec: &CertSpec,
        key: &Key,
        serial: u64,
        nb: OffsetDateTime,
        na: OffsetDateTime,
    ) -> Result<Vec<u8>, String> {
        let mut p = params(spec, serial, nb, na)?;
        // Without a subject key id on the CA, an authority key id would point at nothing.
        p.use_authority_key_identifier_extension = self.has_key_id;
        let cert = p
            .signed_by(key.pair(), &self.issuer)
            .map_err(|e| format!("signing: {e}"))?;
        let der = cert.der().to_vec();
        // Go (kube-apiserver, kubelet, etcd) finds a certificate's CA by comparing the issuer bytes
        // with the CA's subject bytes; a re-encoded name that differs would not chain there.
        let (_, x) = X509Certificate::from_der(&der)
            .map_err(|e| format!("parsing issued certificate: {e}"))?;
        if x.tbs_certificate.issuer.as_raw() != self.subject_raw.as_slice() {
            return Err(
                "the CA's subject name cannot be reproduced byte for byte as the issuer name"
                    .into(),
            );
        }
        Ok(der)
    }
}
