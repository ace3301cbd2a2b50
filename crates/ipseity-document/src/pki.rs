//! X.509 certificates and CRLs (RFC 5280) and CMS SignedData (RFC 5652) as
//! ICAO 9303 part 12 uses them, read leniently where real documents deviate
//! (a signer's issuer name encoded differently from its certificate's) and
//! strictly where security depends on it (the bytes that are signed).

use crate::asn1::{self, tag, Asn1Error, Element};
use crate::verify::{self, CryptoError, HashAlg, PublicKey, Scheme};

/// Why a certificate, CRL or SignedData could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Malformed ASN.1.
    #[error("{what}: {source}")]
    Asn1 {
        /// Which structure.
        what: &'static str,
        /// The reader's error.
        source: Asn1Error,
    },
    /// Well-formed, but not the structure expected.
    #[error("{0}")]
    Structure(String),
}

fn asn1_err(what: &'static str) -> impl Fn(Asn1Error) -> PkiError {
    move |source| PkiError::Asn1 { what, source }
}

/// The three parts of every signed X.509 structure (a certificate, a CRL): the signed
/// body, the signature algorithm and the signature's bits.
fn signed_parts<'a>(
    e: Element<'a>,
    outer: &'static str,
    body: &'static str,
) -> Result<(Element<'a>, Element<'a>, &'a [u8]), Asn1Error> {
    let mut r = e.expect(tag::SEQUENCE, outer)?.children();
    let tbs = r.expect(tag::SEQUENCE, body)?;
    let sig_alg = r.expect(tag::SEQUENCE, "expected signatureAlgorithm")?;
    let sig = r
        .expect(tag::BIT_STRING, "expected a signature")
        .and_then(|s| s.bit_string())?;
    Ok((tbs, sig_alg, sig))
}

/// Object identifiers' content octets used here.
pub mod oid {
    /// id-signedData.
    pub const SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
    /// id-data.
    pub const DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01];
    /// contentType attribute.
    pub const CONTENT_TYPE: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03];
    /// messageDigest attribute.
    pub const MESSAGE_DIGEST: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04];
    /// signingTime attribute.
    pub const SIGNING_TIME: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x05];
    /// id-icao-mrtd-security-ldsSecurityObject (2.23.136.1.1.1).
    pub const LDS_SECURITY_OBJECT: &[u8] = &[0x67, 0x81, 0x08, 0x01, 0x01, 0x01];
    /// id-icao-cscaMasterList (2.23.136.1.1.2).
    pub const CSCA_MASTER_LIST: &[u8] = &[0x67, 0x81, 0x08, 0x01, 0x01, 0x02];
    /// subjectKeyIdentifier.
    pub const SKI: &[u8] = &[0x55, 0x1D, 0x0E];
    /// authorityKeyIdentifier.
    pub const AKI: &[u8] = &[0x55, 0x1D, 0x23];
    /// countryName.
    pub const COUNTRY: &[u8] = &[0x55, 0x04, 0x06];
}

/// A distinguished name: its encoding and a normalised form to compare.
#[derive(Debug, Clone)]
pub struct Name {
    /// The DER of the Name.
    pub raw: Vec<u8>,
    /// (attribute type OID, value) in order, values as text.
    attrs: Vec<(Vec<u8>, String)>,
}

impl Name {
    /// Reads a Name.
    pub fn parse(e: &Element<'_>) -> Result<Self, PkiError> {
        let e = e
            .expect(tag::SEQUENCE, "expected a Name")
            .map_err(asn1_err("Name"))?;
        let mut attrs = vec![];
        let mut rdns = e.children();
        while !rdns.is_empty() {
            let rdn = rdns
                .expect(tag::SET, "expected an RDN")
                .map_err(asn1_err("Name"))?;
            let mut atvs = rdn.children();
            while !atvs.is_empty() {
                let atv = atvs
                    .expect(tag::SEQUENCE, "expected an attribute")
                    .map_err(asn1_err("Name"))?;
                let mut r = atv.children();
                let t = r
                    .expect(tag::OID, "expected an attribute type")
                    .map_err(asn1_err("Name"))?;
                let v = r.next_element().map_err(asn1_err("Name"))?;
                attrs.push((t.value.to_vec(), text(&v)));
            }
        }
        Ok(Self {
            raw: e.raw.to_vec(),
            attrs,
        })
    }

    /// Equal as RFC 5280 compares names, approximately: the same attributes
    /// in the same order, values compared without case and with runs of
    /// spaces folded, whatever string type each was encoded in.
    pub fn matches(&self, other: &Self) -> bool {
        self.raw == other.raw
            || (self.attrs.len() == other.attrs.len()
                && self
                    .attrs
                    .iter()
                    .zip(&other.attrs)
                    .all(|((ta, va), (tb, vb))| ta == tb && fold(va) == fold(vb)))
    }

    /// A key for looking names up.
    pub fn key(&self) -> String {
        self.attrs
            .iter()
            .map(|(t, v)| format!("{}={}", asn1::oid_string(t), fold(v)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The country (C=) attribute.
    pub fn country(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(t, _)| t == oid::COUNTRY)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .attrs
            .iter()
            .map(|(t, v)| {
                let short = match t.as_slice() {
                    [0x55, 0x04, 0x03] => "CN".to_string(),
                    [0x55, 0x04, 0x06] => "C".to_string(),
                    [0x55, 0x04, 0x07] => "L".to_string(),
                    [0x55, 0x04, 0x0A] => "O".to_string(),
                    [0x55, 0x04, 0x0B] => "OU".to_string(),
                    [0x55, 0x04, 0x05] => "serialNumber".to_string(),
                    _ => asn1::oid_string(t),
                };
                format!("{short}={v}")
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

fn fold(v: &str) -> String {
    v.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A directory string's text, whichever of the string types it is in.
fn text(e: &Element<'_>) -> String {
    match e.tag {
        // BMPString: UTF-16 big-endian.
        0x1E => {
            let units: Vec<u16> = e
                .value
                .chunks(2)
                .map(|c| match c {
                    [a, b] => u16::from_be_bytes([*a, *b]),
                    _ => 0xFFFD,
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        // T61String is Latin-1 in practice.
        0x14 => e.value.iter().map(|&b| char::from(b)).collect(),
        _ => String::from_utf8_lossy(e.value).into_owned(),
    }
}

/// An X.509 certificate.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The certificate's encoding.
    pub der: Vec<u8>,
    /// The signed part (tbsCertificate), as encoded.
    tbs: Vec<u8>,
    /// The outer signatureAlgorithm, as encoded.
    signature_algorithm: Vec<u8>,
    /// The signature bits.
    signature: Vec<u8>,
    /// The serial number's bytes (leading zeros removed).
    pub serial: Vec<u8>,
    /// The issuer.
    pub issuer: Name,
    /// The subject.
    pub subject: Name,
    /// notBefore, seconds since 1970.
    pub not_before: i64,
    /// notAfter, seconds since 1970.
    pub not_after: i64,
    /// The subject public key, or why it cannot be used.
    pub key: Result<PublicKey, CryptoError>,
    /// The subject key identifier extension.
    pub subject_key_id: Option<Vec<u8>>,
    /// The authority key identifier's keyIdentifier.
    pub authority_key_id: Option<Vec<u8>>,
}

impl Certificate {
    /// Reads one DER certificate spanning all of `b`.
    pub fn from_der(b: &[u8]) -> Result<Self, PkiError> {
        let e = asn1::read_one(b).map_err(asn1_err("certificate"))?;
        Self::from_element(&e)
    }

    /// Reads a certificate element.
    pub fn from_element(e: &Element<'_>) -> Result<Self, PkiError> {
        let a = asn1_err("certificate");
        let (tbs, sig_alg, sig) =
            signed_parts(*e, "expected a certificate", "expected tbsCertificate").map_err(&a)?;
        let mut t = tbs.children();
        if t.peek_tag() == Some(0xA0) {
            t.next_element().map_err(&a)?;
        }
        let serial = t
            .expect(tag::INTEGER, "expected a serial number")
            .map_err(&a)?;
        let serial = serial.uint_bytes().map_err(&a)?.to_vec();
        t.expect(tag::SEQUENCE, "expected the inner signature algorithm")
            .map_err(&a)?;
        let issuer = Name::parse(&t.next_element().map_err(&a)?)?;
        let mut validity = t
            .expect(tag::SEQUENCE, "expected validity")
            .map_err(&a)?
            .children();
        let not_before = asn1::time(&validity.next_element().map_err(&a)?).map_err(&a)?;
        let not_after = asn1::time(&validity.next_element().map_err(&a)?).map_err(&a)?;
        let subject = Name::parse(&t.next_element().map_err(&a)?)?;
        let spki = t
            .expect(tag::SEQUENCE, "expected a public key")
            .map_err(&a)?;
        let key = PublicKey::from_spki(&spki);
        let (mut ski, mut aki) = (None, None);
        while !t.is_empty() {
            let f = t.next_element().map_err(&a)?;
            if !f.is_context(3) {
                continue;
            }
            let mut exts = f
                .children()
                .expect(tag::SEQUENCE, "expected extensions")
                .map_err(&a)?
                .children();
            while !exts.is_empty() {
                let ext = exts
                    .expect(tag::SEQUENCE, "expected an extension")
                    .map_err(&a)?;
                let mut x = ext.children();
                let id = x
                    .expect(tag::OID, "expected an extension id")
                    .map_err(&a)?
                    .value;
                x.optional(tag::BOOLEAN).map_err(&a)?;
                let v = x
                    .expect(tag::OCTET_STRING, "expected an extension value")
                    .map_err(&a)?;
                if id == oid::SKI {
                    let inner = asn1::read_one(v.value).map_err(&a)?;
                    ski = Some(inner.value.to_vec());
                } else if id == oid::AKI {
                    let seq = asn1::read_one(v.value).map_err(&a)?;
                    let mut k = seq.children();
                    while !k.is_empty() {
                        let item = k.next_element().map_err(&a)?;
                        if item.tag == 0x80 {
                            aki = Some(item.value.to_vec());
                        }
                    }
                }
            }
        }
        Ok(Self {
            der: e.raw.to_vec(),
            tbs: tbs.raw.to_vec(),
            signature_algorithm: sig_alg.raw.to_vec(),
            signature: sig.to_vec(),
            serial,
            issuer,
            subject,
            not_before,
            not_after,
            key,
            subject_key_id: ski,
            authority_key_id: aki,
        })
    }

    /// Whether `issuer_key` signed this certificate.
    pub fn verify_signed_by(&self, issuer_key: &PublicKey) -> Result<(), CryptoError> {
        let alg = asn1::read_one(&self.signature_algorithm)?;
        let scheme = Scheme::from_algorithm(&alg, None)?;
        verify::verify(issuer_key, scheme, &self.tbs, &self.signature)
    }

    /// Whether the certificate is valid at `t` (seconds since 1970).
    pub fn valid_at(&self, t: i64) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    /// The serial number in hex.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A certificate revocation list.
#[derive(Debug, Clone)]
pub struct Crl {
    tbs: Vec<u8>,
    signature_algorithm: Vec<u8>,
    signature: Vec<u8>,
    /// The CRL's issuer.
    pub issuer: Name,
    /// thisUpdate, seconds since 1970.
    pub this_update: i64,
    /// nextUpdate, seconds since 1970.
    pub next_update: Option<i64>,
    /// The serial numbers revoked (leading zeros removed).
    pub revoked: Vec<Vec<u8>>,
}

impl Crl {
    /// Reads a DER (or PEM) CRL.
    pub fn parse(b: &[u8]) -> Result<Self, PkiError> {
        let pem = pem_blocks(b, "X509 CRL");
        let der = pem.first().map(Vec::as_slice).unwrap_or(b);
        let a = asn1_err("CRL");
        let e = asn1::read_one(der).map_err(&a)?;
        let (tbs, sig_alg, sig) =
            signed_parts(e, "expected a CRL", "expected tbsCertList").map_err(&a)?;
        let mut t = tbs.children();
        t.optional(tag::INTEGER).map_err(&a)?;
        t.expect(tag::SEQUENCE, "expected the inner signature algorithm")
            .map_err(&a)?;
        let issuer = Name::parse(&t.next_element().map_err(&a)?)?;
        let this_update = asn1::time(&t.next_element().map_err(&a)?).map_err(&a)?;
        let mut next_update = None;
        if matches!(t.peek_tag(), Some(tag::UTC_TIME | tag::GENERALIZED_TIME)) {
            next_update = Some(asn1::time(&t.next_element().map_err(&a)?).map_err(&a)?);
        }
        let mut revoked = vec![];
        if let Some(list) = t.optional(tag::SEQUENCE).map_err(&a)? {
            let mut l = list.children();
            while !l.is_empty() {
                let entry = l
                    .expect(tag::SEQUENCE, "expected a revoked entry")
                    .map_err(&a)?;
                let serial = entry
                    .children()
                    .expect(tag::INTEGER, "expected a revoked serial")
                    .and_then(|s| s.uint_bytes().map(<[u8]>::to_vec))
                    .map_err(&a)?;
                revoked.push(serial);
            }
        }
        Ok(Self {
            tbs: tbs.raw.to_vec(),
            signature_algorithm: sig_alg.raw.to_vec(),
            signature: sig.to_vec(),
            issuer,
            this_update,
            next_update,
            revoked,
        })
    }

    /// Whether `issuer_key` signed this CRL.
    pub fn verify_signed_by(&self, issuer_key: &PublicKey) -> Result<(), CryptoError> {
        let alg = asn1::read_one(&self.signature_algorithm)?;
        let scheme = Scheme::from_algorithm(&alg, None)?;
        verify::verify(issuer_key, scheme, &self.tbs, &self.signature)
    }
}

/// The bodies of the PEM blocks labelled `label` in `b`, decoded. Nothing
/// when `b` is not text.
pub fn pem_blocks(b: &[u8], label: &str) -> Vec<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(b) else {
        return vec![];
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = vec![];
    let mut rest = text;
    while let Some(i) = rest.find(&begin) {
        let after = rest.get(i + begin.len()..).unwrap_or_default();
        let Some(j) = after.find(&end) else { break };
        if let Some(d) = base64(after.get(..j).unwrap_or_default()) {
            out.push(d);
        }
        rest = after.get(j + end.len()..).unwrap_or_default();
    }
    out
}

/// Standard base64 with whitespace ignored; `None` on any other character.
fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// How a SignerInfo names its signer.
#[derive(Debug, Clone)]
pub enum SignerId {
    /// issuerAndSerialNumber.
    IssuerSerial {
        /// The issuer (may be absent when it does not parse).
        issuer: Option<Name>,
        /// The serial number (leading zeros removed).
        serial: Vec<u8>,
    },
    /// subjectKeyIdentifier.
    KeyId(Vec<u8>),
}

/// One SignerInfo.
#[derive(Debug, Clone)]
pub struct SignerInfo<'a> {
    /// Who signed.
    pub sid: SignerId,
    /// digestAlgorithm.
    pub digest_algorithm: Element<'a>,
    /// The signed attributes (`[0]`), as encoded.
    pub signed_attrs: Option<Element<'a>>,
    /// signatureAlgorithm.
    pub signature_algorithm: Element<'a>,
    /// The signature.
    pub signature: &'a [u8],
}

/// A CMS SignedData, from its ContentInfo.
#[derive(Debug, Clone)]
pub struct SignedData<'a> {
    /// eContentType.
    pub econtent_type: &'a [u8],
    /// The encapsulated content (octet-string chunks joined).
    pub econtent: Vec<u8>,
    /// The certificates carried, as encoded.
    pub certificates: Vec<Element<'a>>,
    /// The signers.
    pub signer_infos: Vec<SignerInfo<'a>>,
}

impl<'a> SignedData<'a> {
    /// Reads a ContentInfo holding SignedData (definite lengths: see
    /// [`asn1::ber_to_der_lengths`]).
    pub fn parse(der: &'a [u8]) -> Result<Self, PkiError> {
        let a = asn1_err("SignedData");
        let ci = asn1::read_one(der).map_err(&a)?;
        let mut r = ci
            .expect(tag::SEQUENCE, "expected a ContentInfo")
            .map_err(&a)?
            .children();
        let ct = r.expect(tag::OID, "expected a content type").map_err(&a)?;
        if ct.value != oid::SIGNED_DATA {
            return Err(PkiError::Structure(format!(
                "content type {} is not signedData",
                asn1::oid_string(ct.value)
            )));
        }
        let explicit = r.expect(0xA0, "expected [0] content").map_err(&a)?;
        let sd = explicit
            .children()
            .expect(tag::SEQUENCE, "expected SignedData")
            .map_err(&a)?;
        let mut s = sd.children();
        s.expect(tag::INTEGER, "expected a version").map_err(&a)?;
        s.expect(tag::SET, "expected digestAlgorithms")
            .map_err(&a)?;
        let eci = s
            .expect(tag::SEQUENCE, "expected encapContentInfo")
            .map_err(&a)?;
        let mut e = eci.children();
        let econtent_type = e
            .expect(tag::OID, "expected eContentType")
            .map_err(&a)?
            .value;
        let econtent = match e.optional(0xA0).map_err(&a)? {
            Some(wrapper) => octets(&wrapper.children().next_element().map_err(&a)?)?,
            None => return Err(PkiError::Structure("detached content: no eContent".into())),
        };
        let mut certificates = vec![];
        if let Some(c) = s.optional(0xA0).map_err(&a)? {
            let mut cr = c.children();
            while !cr.is_empty() {
                certificates.push(cr.next_element().map_err(&a)?);
            }
        }
        s.optional(0xA1).map_err(&a)?;
        let infos = s.expect(tag::SET, "expected signerInfos").map_err(&a)?;
        let mut signer_infos = vec![];
        let mut ir = infos.children();
        while !ir.is_empty() {
            let si = ir
                .expect(tag::SEQUENCE, "expected a SignerInfo")
                .map_err(&a)?;
            signer_infos.push(signer_info(&si)?);
        }
        if signer_infos.is_empty() {
            return Err(PkiError::Structure("SignedData has no SignerInfo".into()));
        }
        Ok(Self {
            econtent_type,
            econtent,
            certificates,
            signer_infos,
        })
    }
}

/// An OCTET STRING's content, the chunks of a constructed one joined.
fn octets(e: &Element<'_>) -> Result<Vec<u8>, PkiError> {
    match e.tag {
        tag::OCTET_STRING => Ok(e.value.to_vec()),
        0x24 => {
            let mut out = vec![];
            let mut r = e.children();
            while !r.is_empty() {
                let c = r
                    .expect(tag::OCTET_STRING, "expected an octet-string chunk")
                    .map_err(asn1_err("eContent"))?;
                out.extend_from_slice(c.value);
            }
            Ok(out)
        }
        _ => Err(PkiError::Structure(
            "eContent is not an OCTET STRING".into(),
        )),
    }
}

fn signer_info<'a>(si: &Element<'a>) -> Result<SignerInfo<'a>, PkiError> {
    let a = asn1_err("SignerInfo");
    let mut r = si.children();
    r.expect(tag::INTEGER, "expected a version").map_err(&a)?;
    let sid_e = r.next_element().map_err(&a)?;
    let sid = if sid_e.tag == tag::SEQUENCE {
        let mut x = sid_e.children();
        let issuer = Name::parse(&x.next_element().map_err(&a)?).ok();
        let serial = x
            .expect(tag::INTEGER, "expected a serial")
            .and_then(|s| s.uint_bytes().map(<[u8]>::to_vec))
            .map_err(&a)?;
        SignerId::IssuerSerial { issuer, serial }
    } else if sid_e.tag == 0x80 {
        SignerId::KeyId(sid_e.value.to_vec())
    } else {
        return Err(PkiError::Structure(
            "SignerInfo: unknown signer identifier".into(),
        ));
    };
    let digest_algorithm = r
        .expect(tag::SEQUENCE, "expected digestAlgorithm")
        .map_err(&a)?;
    let signed_attrs = r.optional(0xA0).map_err(&a)?;
    let signature_algorithm = r
        .expect(tag::SEQUENCE, "expected signatureAlgorithm")
        .map_err(&a)?;
    let signature = r
        .expect(tag::OCTET_STRING, "expected a signature")
        .map_err(&a)?
        .value;
    Ok(SignerInfo {
        sid,
        digest_algorithm,
        signed_attrs,
        signature_algorithm,
        signature,
    })
}

/// What checking one SignerInfo found.
#[derive(Debug, Clone)]
pub struct SignerCheck {
    /// Whether messageDigest matched the content (`None`: no signed attributes).
    pub content_digest: Option<Result<(), String>>,
    /// The signature's outcome.
    pub signature: Result<(), CryptoError>,
    /// The scheme, when it could be read.
    pub scheme: Option<Scheme>,
    /// signingTime, seconds since 1970.
    pub signing_time: Option<i64>,
}

impl<'a> SignerInfo<'a> {
    /// The signed attribute `id`'s first value.
    fn attribute(&self, id: &[u8]) -> Option<Element<'a>> {
        let attrs = self.signed_attrs?;
        let mut r = attrs.children();
        while let Ok(attr) = r.next_element() {
            let mut x = attr.children();
            if x.next_element().ok()?.value == id {
                return x.next_element().ok()?.children().next_element().ok();
            }
        }
        None
    }

    /// The signingTime attribute.
    pub fn signing_time(&self) -> Option<i64> {
        self.attribute(oid::SIGNING_TIME)
            .and_then(|t| asn1::time(&t).ok())
    }

    /// Checks the content digest and the signature with `key`.
    pub fn check(&self, sd: &SignedData<'_>, key: &PublicKey) -> SignerCheck {
        let mut out = SignerCheck {
            content_digest: None,
            signature: Err(CryptoError::Unsupported("not reached".into())),
            scheme: None,
            signing_time: self.signing_time(),
        };
        let digest_alg = match HashAlg::from_algorithm(&self.digest_algorithm) {
            Ok(h) => h,
            Err(e) => {
                out.signature = Err(e);
                return out;
            }
        };
        let scheme = match Scheme::from_algorithm(&self.signature_algorithm, Some(digest_alg)) {
            Ok(s) => s,
            Err(e) => {
                out.signature = Err(e);
                return out;
            }
        };
        out.scheme = Some(scheme);
        let message = match &self.signed_attrs {
            Some(attrs) => {
                let want = digest_alg.digest(&sd.econtent);
                let digest_ok = match self.attribute(oid::MESSAGE_DIGEST) {
                    Some(d) if d.value == want.as_slice() => Ok(()),
                    Some(_) => Err("messageDigest does not match the content".to_string()),
                    None => Err("no messageDigest attribute".to_string()),
                };
                let type_ok = match self.attribute(oid::CONTENT_TYPE) {
                    Some(t) if t.value == sd.econtent_type => Ok(()),
                    Some(_) => Err("contentType attribute differs from eContentType".to_string()),
                    None => Ok(()),
                };
                out.content_digest = Some(digest_ok.and(type_ok));
                // The signature covers the attributes as a SET (RFC 5652 5.4).
                let mut m = Vec::with_capacity(attrs.raw.len());
                asn1::write_header(&mut m, tag::SET, attrs.value.len());
                m.extend_from_slice(attrs.value);
                m
            }
            None => sd.econtent.clone(),
        };
        out.signature = verify::verify(key, scheme, &message, self.signature);
        out
    }

    /// Whether `cert` is the certificate this SignerInfo names; `loose`
    /// matches on the serial number alone (for issuers whose SignerInfo
    /// spells the issuer's name differently from the certificate).
    pub fn names(&self, cert: &Certificate, loose: bool) -> bool {
        match &self.sid {
            SignerId::KeyId(k) => cert.subject_key_id.as_deref() == Some(k.as_slice()),
            SignerId::IssuerSerial { issuer, serial } => {
                *serial == cert.serial
                    && (loose || issuer.as_ref().is_some_and(|i| i.matches(&cert.issuer)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_pem() {
        assert_eq!(base64("TWFu").unwrap(), b"Man");
        assert_eq!(base64("TWE=").unwrap(), b"Ma");
        assert!(base64("T*E=").is_none());
        let pem = b"x\n-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_blocks(pem, "CERTIFICATE"), vec![b"Man".to_vec()]);
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..160)) {
            let _ = Certificate::from_der(&b);
            let _ = Crl::parse(&b);
            let _ = SignedData::parse(&b);
            let _ = pem_blocks(&b, "CERTIFICATE");
        }
    }
}
