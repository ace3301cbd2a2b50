//! Passive authentication (ICAO 9303 part 11 §5.1, part 12): EF.SOD's
//! signature by its document signer, the signer's certificate by a CSCA from
//! a master list or a set of CSCA certificates, its validity and revocation,
//! and each data group's hash. The outcome is a [`PassiveAuthReport`] naming
//! every check; its verdict passes only when every required check passed.

use std::collections::HashMap;

use crate::asn1::{self, tag};
use crate::pki::{self, Certificate, Crl, PkiError, SignedData};
use crate::verify::{CryptoError, HashAlg, Scheme};

/// The largest EF.SOD read (real ones are 1 to 5 KiB; a SOD carrying a long
/// certificate chain stays far below this).
pub const MAX_SOD_BYTES: usize = 64 << 10;

/// The largest master list read (the German one is under 1 MiB).
pub const MAX_MASTER_LIST_BYTES: usize = asn1::MAX_INPUT;

/// Why a trust anchor source could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassiveAuthError {
    /// The bytes are not a certificate, a master list or a SOD.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A master list whose own signature does not verify.
    #[error("master list: {0}")]
    MasterList(String),
    /// Input over a size limit.
    #[error("{what} of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// What was given.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl ipseity_core::Classified for PassiveAuthError {
    fn kind(&self) -> ipseity_core::ErrorKind {
        ipseity_core::ErrorKind::Input
    }

    fn code(&self) -> &'static str {
        "invalid_trust_anchor"
    }
}

/// EF.SOD read: the LDSSecurityObject and the SignedData around it.
#[derive(Debug, Clone)]
pub struct Sod {
    /// The SignedData's encoding with indefinite lengths made definite.
    der: Vec<u8>,
    /// Whether the chip's encoding used BER indefinite lengths.
    pub was_ber: bool,
    /// The hash algorithm of the data groups' hashes.
    pub hash_algorithm: HashAlg,
    /// (data group number, hash) in the SOD's order.
    pub hashes: Vec<(u8, Vec<u8>)>,
    /// ldsVersionInfo's LDS and Unicode versions, when present (LDS 1.8).
    pub lds_version: Option<(String, String)>,
}

impl Sod {
    /// Reads EF.SOD (tag `77` around a ContentInfo; a bare ContentInfo is
    /// accepted too).
    pub fn parse(b: &[u8]) -> Result<Self, PassiveAuthError> {
        if b.len() > MAX_SOD_BYTES {
            return Err(PassiveAuthError::TooLarge {
                what: "EF.SOD",
                len: b.len(),
                max: MAX_SOD_BYTES,
            });
        }
        let a = |source| PkiError::Asn1 {
            what: "EF.SOD",
            source,
        };
        let der = asn1::ber_to_der_lengths(b).map_err(a)?;
        let was_ber = der != b;
        let outer = asn1::read_one(&der).map_err(a)?;
        let content_info = if outer.tag == 0x77 {
            outer.value.to_vec()
        } else {
            der.clone()
        };
        let sd = SignedData::parse(&content_info)?;
        // China's SODs say id-data; the content is still an LDSSecurityObject.
        if sd.econtent_type != pki::oid::LDS_SECURITY_OBJECT && sd.econtent_type != pki::oid::DATA {
            return Err(PkiError::Structure(format!(
                "eContentType {} is not an LDSSecurityObject",
                asn1::oid_string(sd.econtent_type)
            ))
            .into());
        }
        let (hash_algorithm, hashes, lds_version) = lds_security_object(&sd.econtent)?;
        Ok(Self {
            der: content_info,
            was_ber,
            hash_algorithm,
            hashes,
            lds_version,
        })
    }

    /// The SignedData (borrowing this SOD).
    pub fn signed_data(&self) -> Result<SignedData<'_>, PkiError> {
        SignedData::parse(&self.der)
    }

    /// The hash the SOD holds for data group `n`.
    pub fn hash_of(&self, n: u8) -> Option<&[u8]> {
        self.hashes
            .iter()
            .find(|(d, _)| *d == n)
            .map(|(_, h)| h.as_slice())
    }
}

type LdsSo = (HashAlg, Vec<(u8, Vec<u8>)>, Option<(String, String)>);

/// LDSSecurityObject: version, hashAlgorithm, dataGroupHashValues, and
/// ldsVersionInfo in version 1.
fn lds_security_object(b: &[u8]) -> Result<LdsSo, PassiveAuthError> {
    let a = |source| PkiError::Asn1 {
        what: "LDSSecurityObject",
        source,
    };
    let s =
        |why: &str| PassiveAuthError::Pki(PkiError::Structure(format!("LDSSecurityObject: {why}")));
    let root = asn1::read_one(b).map_err(a)?;
    let mut r = root
        .expect(tag::SEQUENCE, "expected a SEQUENCE")
        .map_err(a)?
        .children();
    let version = r.expect(tag::INTEGER, "expected a version").map_err(a)?;
    let version = version.small_uint().map_err(a)?;
    if version > 1 {
        return Err(s(&format!("version {version}")));
    }
    let alg = r
        .expect(tag::SEQUENCE, "expected hashAlgorithm")
        .map_err(a)?;
    let hash = HashAlg::from_algorithm(&alg).map_err(|e| s(&e.to_string()))?;
    let list = r
        .expect(tag::SEQUENCE, "expected dataGroupHashValues")
        .map_err(a)?;
    let mut hashes = vec![];
    let mut l = list.children();
    while !l.is_empty() {
        let item = l
            .expect(tag::SEQUENCE, "expected a DataGroupHash")
            .map_err(a)?;
        let mut x = item.children();
        let n = x
            .expect(tag::INTEGER, "expected a data group number")
            .map_err(a)?;
        let n = n.small_uint().map_err(a)?;
        let h = x
            .expect(tag::OCTET_STRING, "expected a hash")
            .map_err(a)?
            .value;
        let n = u8::try_from(n)
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| s(&format!("data group number {n}")))?;
        if h.len() != hash.output_len() {
            return Err(s(&format!(
                "DG{n}'s hash is {} bytes, {} takes {}",
                h.len(),
                hash.name(),
                hash.output_len()
            )));
        }
        if hashes.iter().any(|(d, _)| *d == n) {
            return Err(s(&format!("DG{n} listed twice")));
        }
        hashes.push((n, h.to_vec()));
    }
    if hashes.is_empty() {
        return Err(s("no data group hashes"));
    }
    let mut lds_version = None;
    if let Some(info) = r.optional(tag::SEQUENCE).map_err(a)? {
        let mut v = info.children();
        let lds = v.next_element().map_err(a)?;
        let uni = v.next_element().map_err(a)?;
        lds_version = Some((
            String::from_utf8_lossy(lds.value).into_owned(),
            String::from_utf8_lossy(uni.value).into_owned(),
        ));
    }
    if !r.is_empty() {
        return Err(s("unexpected fields after dataGroupHashValues"));
    }
    Ok((hash, hashes, lds_version))
}

/// Where a CSCA came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MasterListReport {
    /// The master list signer's subject.
    pub signer: String,
    /// Whether the master list's signature by that signer verified (it must
    /// for its certificates to be trusted).
    pub signature: Check,
    /// Whether the signer's certificate was issued by a CSCA in the list itself
    /// (the list's issuing state's CSCA), and by which.
    pub signer_certificate: Check,
    /// The certificates read from the list.
    pub certificates: usize,
    /// Entries that could not be read as certificates.
    pub unreadable: usize,
}

/// The CSCA certificates passive authentication may chain to.
#[derive(Debug, Default)]
pub struct TrustStore {
    certs: Vec<Certificate>,
    by_subject: HashMap<String, Vec<usize>>,
    by_key_id: HashMap<Vec<u8>, Vec<usize>>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Adds one trusted certificate.
    pub fn add(&mut self, cert: Certificate) {
        let i = self.certs.len();
        self.by_subject
            .entry(cert.subject.key())
            .or_default()
            .push(i);
        if let Some(k) = &cert.subject_key_id {
            self.by_key_id.entry(k.clone()).or_default().push(i);
        }
        self.certs.push(cert);
    }

    /// Adds the certificates in a DER or PEM file; returns how many.
    pub fn add_certificates(&mut self, b: &[u8]) -> Result<usize, PassiveAuthError> {
        let pem = pki::pem_blocks(b, "CERTIFICATE");
        if pem.is_empty() {
            self.add(Certificate::from_der(b)?);
            return Ok(1);
        }
        for d in &pem {
            self.add(Certificate::from_der(d)?);
        }
        Ok(pem.len())
    }

    /// Adds the CSCAs of an ICAO master list after verifying the list's own
    /// signature; a list whose signature fails adds nothing and is an error.
    pub fn add_master_list(&mut self, b: &[u8]) -> Result<MasterListReport, PassiveAuthError> {
        if b.len() > MAX_MASTER_LIST_BYTES {
            return Err(PassiveAuthError::TooLarge {
                what: "master list",
                len: b.len(),
                max: MAX_MASTER_LIST_BYTES,
            });
        }
        let der = asn1::ber_to_der_lengths(b).map_err(|source| PkiError::Asn1 {
            what: "master list",
            source,
        })?;
        let sd = SignedData::parse(&der)?;
        if sd.econtent_type != pki::oid::CSCA_MASTER_LIST {
            return Err(PassiveAuthError::MasterList(format!(
                "eContentType {} is not id-icao-cscaMasterList",
                asn1::oid_string(sd.econtent_type)
            )));
        }
        let a = |source| PkiError::Asn1 {
            what: "CscaMasterList",
            source,
        };
        let list = asn1::read_one(&sd.econtent).map_err(a)?;
        let mut r = list
            .expect(tag::SEQUENCE, "expected a CscaMasterList")
            .map_err(a)?
            .children();
        r.expect(tag::INTEGER, "expected a version").map_err(a)?;
        let set = r.expect(tag::SET, "expected certList").map_err(a)?;
        let (mut certs, mut unreadable) = (vec![], 0usize);
        let mut c = set.children();
        while !c.is_empty() {
            match Certificate::from_element(&c.next_element().map_err(a)?) {
                Ok(cert) => certs.push(cert),
                Err(_) => unreadable += 1,
            }
        }
        let si = sd
            .signer_infos
            .first()
            .ok_or_else(|| PassiveAuthError::MasterList("no signer".into()))?;
        let carried: Vec<Certificate> = sd
            .certificates
            .iter()
            .filter_map(|e| Certificate::from_element(e).ok())
            .collect();
        let signer = find_signer(si, &carried).ok_or_else(|| {
            PassiveAuthError::MasterList("the signer's certificate is not in the list".into())
        })?;
        let key = signer
            .key
            .as_ref()
            .map_err(|e| PassiveAuthError::MasterList(format!("signer key: {e}")))?;
        let checked = si.check(&sd, key);
        let signature = match (&checked.content_digest, &checked.signature) {
            (Some(Err(why)), _) => Check::fail("master_list_signature", why.clone()),
            (_, Err(e)) => Check::fail("master_list_signature", e.to_string()),
            (_, Ok(())) => Check::pass(
                "master_list_signature",
                format!("signed by {}", signer.subject),
            ),
        };
        if signature.outcome != Outcome::Pass {
            return Err(PassiveAuthError::MasterList(signature.detail));
        }
        let issuer = certs.iter().find(|c| {
            c.subject.matches(&signer.issuer)
                && c.key
                    .as_ref()
                    .is_ok_and(|k| signer.verify_signed_by(k).is_ok())
        });
        let signer_certificate = match issuer {
            Some(c) => Check::pass(
                "master_list_signer_certificate",
                format!(
                    "issued by {} (serial {}), in the list",
                    c.subject,
                    c.serial_hex()
                ),
            ),
            None => Check::fail(
                "master_list_signer_certificate",
                format!(
                    "no CSCA in the list issued the signer's certificate ({})",
                    signer.issuer
                ),
            ),
        };
        let report = MasterListReport {
            signer: signer.subject.to_string(),
            signature,
            signer_certificate,
            certificates: certs.len(),
            unreadable,
        };
        for cert in certs {
            self.add(cert);
        }
        Ok(report)
    }

    /// The CSCAs that may have issued `cert`: first those whose key
    /// identifier is its authority key identifier, then the others whose
    /// subject is its issuer. The order matters for speed only: a state has
    /// several CSCAs under one name (key rollover, link certificates), and
    /// each wrong one costs a failed signature check.
    fn candidates(&self, cert: &Certificate) -> Vec<&Certificate> {
        let mut idx: Vec<usize> = vec![];
        if let Some(k) = &cert.authority_key_id {
            idx.extend(self.by_key_id.get(k).into_iter().flatten());
        }
        for i in self
            .by_subject
            .get(&cert.issuer.key())
            .into_iter()
            .flatten()
        {
            if !idx.contains(i) {
                idx.push(*i);
            }
        }
        idx.into_iter().filter_map(|i| self.certs.get(i)).collect()
    }
}

/// A certificate SignedData names as its signer, among `certs`.
/// The named check of a signer's signature: failed, not checked (an algorithm not
/// supported), or passed with the key and whether signed attributes were used.
fn signature_check(name: &str, signer: &pki::SignerCheck, ds: &Certificate) -> Check {
    match (&signer.content_digest, &signer.signature) {
        (Some(Err(why)), _) => Check::fail(name, why.clone()),
        (_, Err(CryptoError::Unsupported(why))) => {
            Check::skipped(name, format!("unsupported: {why}"))
        }
        (_, Err(e)) => Check::fail(name, e.to_string()),
        (digest, Ok(())) => Check::pass(
            name,
            format!(
                "{} by {}{}",
                ds.key.as_ref().map(|k| k.describe()).unwrap_or_default(),
                ds.subject,
                if digest.is_some() {
                    " over signed attributes whose messageDigest matches"
                } else {
                    " directly over the content"
                }
            ),
        ),
    }
}

/// The signer's signature over the content, with its certificate's key (a key that
/// could not be read is a failed signature).
fn check_signer(
    si: &pki::SignerInfo<'_>,
    sd: &SignedData<'_>,
    ds: &Certificate,
) -> pki::SignerCheck {
    match &ds.key {
        Ok(k) => si.check(sd, k),
        Err(e) => pki::SignerCheck {
            content_digest: None,
            signature: Err(e.clone()),
            scheme: None,
            signing_time: si.signing_time(),
        },
    }
}

fn find_signer<'c>(si: &pki::SignerInfo<'_>, certs: &'c [Certificate]) -> Option<&'c Certificate> {
    certs
        .iter()
        .find(|c| si.names(c, false))
        .or_else(|| certs.iter().find(|c| si.names(c, true)))
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed.
    Fail,
    /// It could not be done; the detail says why.
    NotChecked,
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Its name (`sod_signature`, `dg1_hash`, ...).
    pub name: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Whether the verdict needs it to pass.
    pub required: bool,
    /// What was found, or why it was not checked.
    pub detail: String,
}

impl Check {
    fn new(name: &str, outcome: Outcome, required: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome,
            required,
            detail: detail.into(),
        }
    }
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Pass, true, detail)
    }
    fn fail(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Fail, true, detail)
    }
    fn skipped(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::NotChecked, true, detail)
    }
}

/// A certificate, described.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertificateSummary {
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// notBefore (UTC).
    pub not_before: String,
    /// notAfter (UTC).
    pub not_after: String,
    /// Key type and size.
    pub key: String,
}

impl From<&Certificate> for CertificateSummary {
    fn from(c: &Certificate) -> Self {
        Self {
            subject: c.subject.to_string(),
            issuer: c.issuer.to_string(),
            serial: c.serial_hex(),
            not_before: asn1::format_time(c.not_before),
            not_after: asn1::format_time(c.not_after),
            key: match &c.key {
                Ok(k) => k.describe(),
                Err(e) => format!("unusable: {e}"),
            },
        }
    }
}

/// Which time the signer's validity was judged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The SOD's signingTime attribute.
    SigningTime,
    /// The time of the check (the SOD has no signingTime).
    Now,
}

/// Passive authentication's outcome, check by check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassiveAuthReport {
    /// Pass only when every required check passed.
    pub verdict: Outcome,
    /// Every check, in the order done.
    pub checks: Vec<Check>,
    /// The SOD's data-group hash algorithm.
    pub hash_algorithm: Option<HashAlg>,
    /// The SOD's signature scheme.
    pub signature_scheme: Option<Scheme>,
    /// The document signer's certificate.
    pub document_signer: Option<CertificateSummary>,
    /// The CSCA that issued it.
    pub csca: Option<CertificateSummary>,
    /// The SOD's signingTime (UTC), when present.
    pub signing_time: Option<String>,
    /// The time the signer's validity was judged at.
    pub validity_time: Option<String>,
    /// Where that time came from.
    pub validity_time_source: Option<TimeSource>,
    /// The data groups the SOD holds hashes for.
    pub data_groups_in_sod: Vec<u8>,
}

impl PassiveAuthReport {
    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Whether the verdict is a pass.
    pub fn passed(&self) -> bool {
        self.verdict == Outcome::Pass
    }

    /// A report with no check yet (its verdict fails until [`Self::finish`]).
    fn empty() -> Self {
        Self {
            verdict: Outcome::Fail,
            checks: vec![],
            hash_algorithm: None,
            signature_scheme: None,
            document_signer: None,
            csca: None,
            signing_time: None,
            validity_time: None,
            validity_time_source: None,
            data_groups_in_sod: vec![],
        }
    }

    fn finish(mut self) -> Self {
        let all = self
            .checks
            .iter()
            .filter(|c| c.required)
            .all(|c| c.outcome == Outcome::Pass);
        self.verdict = if all && !self.checks.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail
        };
        self
    }
}

/// What passive authentication is given.
#[derive(Debug, Clone, Copy)]
pub struct PassiveAuthInput<'a> {
    /// EF.SOD's bytes.
    pub sod: &'a [u8],
    /// The data groups read, `(number, bytes)`.
    pub data_groups: &'a [(u8, &'a [u8])],
    /// The CSCAs trusted (`None`: no chain check, which fails the verdict).
    pub trust: Option<&'a TrustStore>,
    /// A CRL from the issuing state's CSCA.
    pub crl: Option<&'a [u8]>,
    /// The time of the check, seconds since 1970 (used when the SOD has no
    /// signingTime).
    pub now: i64,
}

/// Runs passive authentication. Never fails: what cannot be checked is a
/// named check that did not pass.
pub fn authenticate(input: &PassiveAuthInput<'_>) -> PassiveAuthReport {
    let mut rep = PassiveAuthReport::empty();
    const LATER: &str = "not reached: EF.SOD could not be read";
    let later = |rep: &mut PassiveAuthReport, names: &[&str]| {
        for n in names {
            rep.checks.push(Check::skipped(n, LATER));
        }
    };
    let chain_checks = [
        "sod_signature",
        "document_signer_certificate",
        "document_signer_validity",
        "document_signer_revocation",
    ];
    let sod = match Sod::parse(input.sod) {
        Ok(s) => s,
        Err(e) => {
            rep.checks.push(Check::fail("sod_parse", e.to_string()));
            later(&mut rep, &chain_checks);
            return rep.finish();
        }
    };
    let sd = match sod.signed_data() {
        Ok(sd) => sd,
        Err(e) => {
            rep.checks.push(Check::fail("sod_parse", e.to_string()));
            later(&mut rep, &chain_checks);
            return rep.finish();
        }
    };
    rep.hash_algorithm = Some(sod.hash_algorithm);
    rep.data_groups_in_sod = sod.hashes.iter().map(|(n, _)| *n).collect();
    rep.checks.push(Check::pass(
        "sod_parse",
        format!(
            "LDSSecurityObject with {} hashes of DG{}{}",
            sod.hash_algorithm.name(),
            rep.data_groups_in_sod
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", DG"),
            if sod.was_ber {
                " (BER indefinite lengths read)"
            } else {
                ""
            }
        ),
    ));

    // The signer: the SOD must carry its certificate (ICAO 9303-10 4.6.2.2).
    let certs: Vec<Certificate> = sd
        .certificates
        .iter()
        .filter_map(|e| Certificate::from_element(e).ok())
        .collect();
    let si = sd.signer_infos.first();
    let ds = si.and_then(|si| find_signer(si, &certs));
    let (Some(si), Some(ds)) = (si, ds) else {
        rep.checks.push(Check::fail(
            "sod_signature",
            "the SOD carries no certificate for its signer",
        ));
        for n in chain_checks.iter().skip(1) {
            rep.checks.push(Check::skipped(
                n,
                "not reached: no document signer certificate",
            ));
        }
        data_group_checks(&mut rep, &sod, input.data_groups);
        return rep.finish();
    };
    rep.document_signer = Some(ds.into());
    let signer = check_signer(si, &sd, ds);
    rep.signature_scheme = signer.scheme;
    rep.checks
        .push(signature_check("sod_signature", &signer, ds));

    // The chain: a trusted CSCA whose key verifies the signer's certificate.
    let csca = chain(&mut rep, ds, input.trust);

    // Validity at signing time, or now.
    let (t, source) = match signer.signing_time {
        Some(t) => (t, TimeSource::SigningTime),
        None => (input.now, TimeSource::Now),
    };
    rep.signing_time = signer.signing_time.map(asn1::format_time);
    rep.validity_time = Some(asn1::format_time(t));
    rep.validity_time_source = Some(source);
    let when = match source {
        TimeSource::SigningTime => "at the SOD's signingTime",
        TimeSource::Now => "now (the SOD has no signingTime)",
    };
    let window = format!(
        "{} to {}",
        asn1::format_time(ds.not_before),
        asn1::format_time(ds.not_after)
    );
    rep.checks.push(if ds.valid_at(t) {
        Check::pass(
            "document_signer_validity",
            format!("valid {when}, {}: {window}", asn1::format_time(t)),
        )
    } else {
        Check::fail(
            "document_signer_validity",
            format!("not valid {when}, {}: {window}", asn1::format_time(t)),
        )
    });

    revocation(&mut rep, ds, csca, input.crl);
    data_group_checks(&mut rep, &sod, input.data_groups);
    rep.finish()
}

/// Finds the CSCA that signed `ds` and records the check.
/// EF.CardSecurity's own authentication: its CMS signature (the SecurityInfos it
/// announces are signed by a document signer) and that signer's chain to a trusted
/// CSCA. A report with the checks `card_security_parse`, `card_security_signature` and
/// `document_signer_certificate`; its verdict passes only when all three do.
pub fn authenticate_card_security(b: &[u8], trust: Option<&TrustStore>) -> PassiveAuthReport {
    let mut rep = PassiveAuthReport::empty();
    // Read once: the same SignedData gives the infos and the signature.
    let failed = |mut rep: PassiveAuthReport, e: String| {
        rep.checks.push(Check::fail("card_security_parse", e));
        rep.finish()
    };
    let der = match crate::lds::card_security_der(b) {
        Ok(d) => d,
        Err(e) => return failed(rep, e.to_string()),
    };
    let sd = match SignedData::parse(&der) {
        Ok(sd) => sd,
        Err(e) => return failed(rep, e.to_string()),
    };
    let infos = match crate::lds::card_security_infos(&sd) {
        Ok(i) => i,
        Err(e) => return failed(rep, e.to_string()),
    };
    rep.checks.push(Check::pass(
        "card_security_parse",
        format!("{} SecurityInfos", infos.len()),
    ));
    let certs: Vec<Certificate> = sd
        .certificates
        .iter()
        .filter_map(|e| Certificate::from_element(e).ok())
        .collect();
    let si = sd.signer_infos.first();
    let Some((si, ds)) = si.and_then(|si| find_signer(si, &certs).map(|ds| (si, ds))) else {
        rep.checks.push(Check::fail(
            "card_security_signature",
            "EF.CardSecurity carries no certificate for its signer",
        ));
        return rep.finish();
    };
    rep.document_signer = Some(ds.into());
    let signed = check_signer(si, &sd, ds);
    rep.signature_scheme = signed.scheme;
    rep.checks
        .push(signature_check("card_security_signature", &signed, ds));
    chain(&mut rep, ds, trust);
    rep.finish()
}

fn chain<'t>(
    rep: &mut PassiveAuthReport,
    ds: &Certificate,
    trust: Option<&'t TrustStore>,
) -> Option<&'t Certificate> {
    const NAME: &str = "document_signer_certificate";
    let Some(trust) = trust.filter(|t| !t.is_empty()) else {
        rep.checks.push(Check::skipped(
            NAME,
            "no CSCA given (a master list or CSCA certificates): the signer is not traced to a state",
        ));
        return None;
    };
    let candidates = trust.candidates(ds);
    let mut last_err = None;
    for c in &candidates {
        let Ok(k) = &c.key else { continue };
        match ds.verify_signed_by(k) {
            Ok(()) => {
                rep.csca = Some((*c).into());
                rep.checks.push(Check::pass(
                    NAME,
                    format!("issued by CSCA {} (serial {})", c.subject, c.serial_hex()),
                ));
                return Some(c);
            }
            Err(e) => last_err = Some(e),
        }
    }
    rep.checks.push(Check::fail(
        NAME,
        match last_err {
            Some(e) => format!(
                "{} CSCA certificate(s) named {}, none verifies it: {e}",
                candidates.len(),
                ds.issuer
            ),
            None => format!("no trusted CSCA for issuer {}", ds.issuer),
        },
    ));
    None
}

fn revocation(
    rep: &mut PassiveAuthReport,
    ds: &Certificate,
    csca: Option<&Certificate>,
    crl: Option<&[u8]>,
) {
    const NAME: &str = "document_signer_revocation";
    let Some(b) = crl else {
        rep.checks
            .push(Check::new(NAME, Outcome::NotChecked, false, "no CRL given"));
        return;
    };
    let crl = match Crl::parse(b) {
        Ok(c) => c,
        Err(e) => {
            rep.checks
                .push(Check::fail(NAME, format!("the CRL cannot be read: {e}")));
            return;
        }
    };
    if !crl.issuer.matches(&ds.issuer) {
        rep.checks.push(Check::fail(
            NAME,
            format!(
                "the CRL is from {}, not the signer's issuer {}",
                crl.issuer, ds.issuer
            ),
        ));
        return;
    }
    // A CRL counts only when the CSCA that issued the signer signed it.
    let Some(key) = csca.and_then(|c| c.key.as_ref().ok()) else {
        rep.checks.push(Check::skipped(
            NAME,
            "the CRL's signature cannot be checked without the signer's CSCA",
        ));
        return;
    };
    if let Err(e) = crl.verify_signed_by(key) {
        rep.checks
            .push(Check::fail(NAME, format!("the CRL's signature: {e}")));
        return;
    }
    if crl.revoked.contains(&ds.serial) {
        rep.checks.push(Check::fail(
            NAME,
            format!(
                "serial {} is revoked by the CRL of {}",
                ds.serial_hex(),
                asn1::format_time(crl.this_update)
            ),
        ));
    } else {
        rep.checks.push(Check::pass(
            NAME,
            format!(
                "not among the {} serials the CRL of {} revokes",
                crl.revoked.len(),
                asn1::format_time(crl.this_update)
            ),
        ));
    }
}

fn data_group_checks(rep: &mut PassiveAuthReport, sod: &Sod, dgs: &[(u8, &[u8])]) {
    if dgs.is_empty() {
        rep.checks.push(Check::new(
            "data_groups",
            Outcome::NotChecked,
            false,
            "no data group given: the SOD is checked, not the chip's contents",
        ));
        return;
    }
    let mut given: Vec<u8> = vec![];
    for (n, bytes) in dgs {
        let name = format!("dg{n}_hash");
        given.push(*n);
        rep.checks.push(match sod.hash_of(*n) {
            None => Check::fail(
                &name,
                format!("DG{n} is present but the SOD holds no hash for it"),
            ),
            Some(want) => {
                let got = sod.hash_algorithm.digest(bytes);
                if got == want {
                    Check::pass(&name, format!("{} matches", sod.hash_algorithm.name()))
                } else {
                    Check::fail(
                        &name,
                        format!(
                            "{} {} differs from the SOD's {}",
                            sod.hash_algorithm.name(),
                            pki::hex(&got),
                            pki::hex(want)
                        ),
                    )
                }
            }
        });
    }
    for (n, _) in &sod.hashes {
        if !given.contains(n) {
            rep.checks.push(Check::new(
                &format!("dg{n}_hash"),
                Outcome::NotChecked,
                false,
                format!("DG{n} is in the SOD but was not read"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_failed_parse_with_every_check_named() {
        let rep = authenticate(&PassiveAuthInput {
            sod: &[0x77, 0x03, 0x30, 0x01, 0x00],
            data_groups: &[],
            trust: None,
            crl: None,
            now: 0,
        });
        assert_eq!(rep.verdict, Outcome::Fail);
        assert_eq!(
            rep.check("sod_parse").map(|c| c.outcome),
            Some(Outcome::Fail)
        );
        assert_eq!(
            rep.check("sod_signature").map(|c| c.outcome),
            Some(Outcome::NotChecked)
        );
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = authenticate(&PassiveAuthInput {
                sod: &b, data_groups: &[(1, &b)], trust: None, crl: Some(&b), now: 0,
            });
            let _ = TrustStore::new().add_master_list(&b);
            let _ = TrustStore::new().add_certificates(&b);
        }
    }
}
