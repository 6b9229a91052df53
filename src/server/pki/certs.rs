//! Generating and inspecting certificates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;

use super::der;
use super::sans::SanSet;

/// Lifetime of the cluster CA.
pub(super) const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Lifetime of leaf certificates (serving, clients).
pub(super) const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A leaf certificate is re-issued when it expires within this window.
pub(super) const RENEW_BEFORE: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// Back-dating of `notBefore`, for peers whose clocks lag a little.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// What a new certificate is for.
pub(super) enum Purpose<'a> {
    Ca,
    Server { sans: &'a SanSet },
    Client,
}

/// Builds the parameters of a new certificate (random serial, validity from
/// now − 1 h to now + `lifetime`).
pub(super) fn params(
    common_name: &str,
    organizations: &[&str],
    purpose: Purpose<'_>,
    lifetime: Duration,
) -> Result<CertificateParams, rcgen::Error> {
    let mut p = match &purpose {
        Purpose::Server { sans } => CertificateParams::new(sans.to_strings())?,
        _ => CertificateParams::new(Vec::<String>::new())?,
    };
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    let now = SystemTime::now();
    // A short-lived certificate is back-dated in proportion: its holder
    // renews at a share of its lifetime, which an hour would swamp.
    p.not_before = (now - BACKDATE.min(lifetime / 10)).into();
    p.not_after = (now + lifetime).into();
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x01; // positive, 16 significant bytes
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    match purpose {
        Purpose::Ca => {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        }
        Purpose::Server { .. } => {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            p.use_authority_key_identifier_extension = true;
        }
        Purpose::Client => {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p.use_authority_key_identifier_extension = true;
        }
    }
    Ok(p)
}

/// A fresh ECDSA P-256 key.
pub(super) fn new_key() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
}

/// Issues a leaf certificate from `issuer` with a fresh key: subject CN =
/// `common_name` and one O per entry of `organizations`. Returns (cert PEM, key PEM).
pub(super) fn issue(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    organizations: &[&str],
    purpose: Purpose<'_>,
    lifetime: Duration,
) -> Result<(String, String), String> {
    let key = new_key().map_err(|e| e.to_string())?;
    if organizations.len() <= 1 {
        let params =
            params(common_name, organizations, purpose, lifetime).map_err(|e| e.to_string())?;
        let cert = params.signed_by(&key, issuer).map_err(|e| e.to_string())?;
        return Ok((cert.pem(), key.serialize_pem()));
    }
    // rcgen holds one O per subject: issue with a unique placeholder O, then
    // swap in the real subject and re-sign (see `der`).
    let placeholder = format!(
        "skiff-placeholder-{}",
        hex::encode(rand::random::<[u8; 16]>())
    );
    let params =
        params(common_name, &[&placeholder], purpose, lifetime).map_err(|e| e.to_string())?;
    let cert = params.signed_by(&key, issuer).map_err(|e| e.to_string())?;
    let old = der::name(&[(der::OID_O, &placeholder), (der::OID_CN, common_name)]);
    let attrs: Vec<(&[u8], &str)> = organizations
        .iter()
        .map(|o| (der::OID_O, *o))
        .chain(std::iter::once((der::OID_CN, common_name)))
        .collect();
    let new = der::name(&attrs);
    let cert_der = der::replace_subject(cert.der(), &old, &new, issuer.key())?;
    Ok((der::cert_pem(&cert_der), key.serialize_pem()))
}

/// Signs the public key of the certificate request `csr_pem` (its
/// signature checked: the requester holds the key) into a leaf whose
/// subject and extensions are all ours — nothing the request asks for
/// beyond its key is taken. At most one organization. Returns the PEM.
pub(super) fn sign_request(
    issuer: &Issuer<'static, KeyPair>,
    csr_pem: &str,
    common_name: &str,
    organization: Option<&str>,
    purpose: Purpose<'_>,
    lifetime: Duration,
) -> Result<String, String> {
    acceptable_key(csr_pem)?;
    let mut request = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| format!("the certificate request is not usable: {e}"))?;
    let orgs: Vec<&str> = organization.into_iter().collect();
    request.params = params(common_name, &orgs, purpose, lifetime).map_err(|e| e.to_string())?;
    request
        .signed_by(issuer)
        .map(|c| c.pem())
        .map_err(|e| e.to_string())
}

/// Whether the key of certificate request `csr_pem` is one the cluster
/// signs: ECDSA on P-256 or P-384, Ed25519, or RSA of 2048 bits or more
/// (upstream's CSR approvers refuse weaker keys too).
fn acceptable_key(csr_pem: &str) -> Result<(), String> {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
        OID_SIG_ED25519,
    };
    use x509_parser::prelude::FromDer;
    let unusable = |e: String| format!("the certificate request is not usable: {e}");
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes())
        .map_err(|e| unusable(e.to_string()))?;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| unusable(e.to_string()))?;
    let spki = &req.certification_request_info.subject_pki;
    let alg = &spki.algorithm.algorithm;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let ok = if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        curve.is_some_and(|c| c == OID_EC_P256 || c == OID_NIST_EC_P384)
    } else if *alg == OID_SIG_ED25519 {
        true
    } else if *alg == OID_PKCS1_RSAENCRYPTION {
        spki.parsed().is_ok_and(|k| k.key_size() >= 2048)
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err("the certificate request's key is not one the cluster signs: use ECDSA P-256 or P-384, Ed25519, or RSA of at least 2048 bits".into())
    }
}

/// The first certificate of a PEM text, as DER.
pub(super) fn first_cert_der(pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(|r| r.ok())
}

/// Seconds since the epoch, now.
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Why an existing leaf certificate can no longer be used, if it cannot.
pub(super) fn leaf_problem(
    cert: &X509Certificate<'_>,
    key: &KeyPair,
    ca: &X509Certificate<'_>,
    wanted_sans: Option<&SanSet>,
) -> Option<String> {
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Some("the key does not match the certificate".into());
    }
    if cert.issuer().as_raw() != ca.subject().as_raw() || !issued_by(cert, ca) {
        return Some("it was not issued by the current cluster CA".into());
    }
    let renew_at = unix_now() + RENEW_BEFORE.as_secs() as i64;
    if cert.validity().not_after.timestamp() < renew_at {
        return Some("it expires within 90 days".into());
    }
    if let Some(wanted) = wanted_sans {
        let have = SanSet::from_cert(cert);
        if !have.covers(wanted) {
            let missing: Vec<String> = wanted
                .ips
                .difference(&have.ips)
                .map(|ip| ip.to_string())
                .chain(wanted.dns.difference(&have.dns).cloned())
                .collect();
            return Some(format!("it lacks SANs {}", missing.join(", ")));
        }
    }
    None
}

/// Whether `ca`'s key signed `cert`, whose issuer name is `ca`'s. skiff's
/// leaves name their issuer's key (authority key identifier) and its CA
/// names its own (subject key identifier), both a hash of the CA's public
/// key: when both are there, comparing them answers the question without an
/// ECDSA verification per leaf, which was most of a restart's certificate
/// work. This is a consistency check of files skiff wrote into a private
/// directory (is this leaf from the current CA, or from one it replaced?),
/// not a trust decision: every TLS peer verifies the chain itself. Without
/// the identifiers (certificates made elsewhere), the signature is verified.
fn issued_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    use x509_parser::extensions::ParsedExtension;
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        });
    let ski = ca
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski),
            _ => None,
        });
    match (aki, ski) {
        (Some(aki), Some(ski)) => aki.0 == ski.0,
        _ => cert.verify_signature(Some(ca.public_key())).is_ok(),
    }
}
