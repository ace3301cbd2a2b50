//! Synthetic documents for tests, fuzz seeds and demonstrations: a test CSCA,
//! a document signer and an EF.SOD over data groups the caller gives, with
//! RSA (PKCS#1 v1.5 or PSS), ECDSA P-256 or ECDSA brainpoolP256r1 keys.
//!
//! Keys come from a seed through a deterministic generator, so nothing made
//! here is secret: it exists so that negative cases (a flipped byte, a wrong
//! CSCA, an expired or revoked signer) can be built without real documents.
//! Public (not a dev-only module) so that the CLI's tests can write a whole
//! chip dump; it is not used by passive authentication itself.

use std::convert::Infallible;

use ecdsa::signature::hazmat::PrehashSigner as _;
use sha2_v011::{Digest, Sha256};

use crate::asn1::write_header;
use crate::pki::oid as pki_oid;
use crate::verify::oid;

/// A deterministic generator (SHA-256 in counter mode) for key generation
/// and PSS salts in tests. Not a source of secrets.
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed: Sha256::digest(seed.to_be_bytes()).into(),
            counter: 0,
        }
    }
}

impl rsa::rand_core::TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(32) {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_be_bytes());
            self.counter += 1;
            let block = h.finalize();
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

impl rsa::rand_core::TryCryptoRng for SeededRng {}

/// Which algorithm a test key signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048, PKCS#1 v1.5 with SHA-256.
    RsaPkcs1,
    /// RSA 2048, RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32.
    RsaPss,
    /// ECDSA on P-256 with SHA-256 (named curve).
    P256,
    /// ECDSA on brainpoolP256r1 with SHA-256, the key given with explicit
    /// domain parameters as many passports do.
    BrainpoolP256,
}

enum Secret {
    Rsa(Box<rsa::PrivateKey>),
    P256(ecdsa::SigningKey<p256::NistP256>),
    Bp256(ecdsa::SigningKey<bp256::BrainpoolP256r1>),
}

/// A test signing key.
pub struct TestKey {
    kind: KeyKind,
    secret: Secret,
}

/// Why a test fixture could not be made (key generation failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("test fixture: {0}")]
pub struct FixtureError(String);

fn ferr(e: impl std::fmt::Display) -> FixtureError {
    FixtureError(e.to_string())
}

impl TestKey {
    /// A key of `kind` derived from `seed`.
    pub fn generate(kind: KeyKind, seed: u64) -> Result<Self, FixtureError> {
        let mut rng = SeededRng::new(seed);
        let secret = match kind {
            KeyKind::RsaPkcs1 | KeyKind::RsaPss => Secret::Rsa(Box::new(
                rsa::PrivateKey::new(&mut rng, 2048).map_err(ferr)?,
            )),
            KeyKind::P256 | KeyKind::BrainpoolP256 => {
                // Retry the rare seed outside [1, n).
                let mut bytes = [0u8; 32];
                loop {
                    rsa::rand_core::TryRng::try_fill_bytes(&mut rng, &mut bytes).map_err(ferr)?;
                    let made = if kind == KeyKind::P256 {
                        ecdsa::SigningKey::<p256::NistP256>::from_slice(&bytes).map(Secret::P256)
                    } else {
                        ecdsa::SigningKey::<bp256::BrainpoolP256r1>::from_slice(&bytes)
                            .map(Secret::Bp256)
                    };
                    if let Ok(s) = made {
                        break s;
                    }
                }
            }
        };
        Ok(Self { kind, secret })
    }

    /// The SubjectPublicKeyInfo.
    pub fn spki(&self) -> Vec<u8> {
        match &self.secret {
            Secret::Rsa(k) => {
                use rsa::traits::PublicKeyParts as _;
                let n = k.n().to_be_bytes();
                let e = k.e().to_be_bytes();
                let key = seq(&[int(&n), int(&e)]);
                seq(&[seq(&[oidv(oid::RSA), null()]), bits(&key)])
            }
            Secret::P256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                seq(&[
                    seq(&[oidv(oid::EC_PUBLIC_KEY), oidv(oid::P256)]),
                    bits(point.as_bytes()),
                ])
            }
            Secret::Bp256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                seq(&[
                    seq(&[oidv(oid::EC_PUBLIC_KEY), bp256_explicit()]),
                    bits(point.as_bytes()),
                ])
            }
        }
    }

    /// The signature AlgorithmIdentifier.
    pub fn algorithm(&self) -> Vec<u8> {
        match self.kind {
            KeyKind::RsaPkcs1 => {
                let mut o = oid::PKCS1.to_vec();
                o.push(0x0B);
                seq(&[oidv(&o), null()])
            }
            KeyKind::RsaPss => seq(&[
                oidv(oid::RSA_PSS),
                seq(&[
                    ctx(0, &sha256_alg()),
                    ctx(1, &seq(&[oidv(oid::MGF1), sha256_alg()])),
                    ctx(2, &int(&[32])),
                ]),
            ]),
            KeyKind::P256 | KeyKind::BrainpoolP256 => {
                let mut o = oid::ECDSA_SHA2.to_vec();
                o.push(2);
                seq(&[oidv(&o)])
            }
        }
    }

    /// Signs `message` (hashed with SHA-256 here).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, FixtureError> {
        let digest = Sha256::digest(message);
        match &self.secret {
            Secret::Rsa(k) if self.kind == KeyKind::RsaPss => {
                let mut rng = SeededRng::new(u64::from(message.len() as u32));
                let pss = rsa::Pss::<Sha256> {
                    blinded: true,
                    digest: Sha256::new(),
                    salt_len: Some(32),
                };
                k.sign_with_rng(&mut rng, pss, &digest).map_err(ferr)
            }
            Secret::Rsa(k) => {
                let mut prefix = vec![];
                prefix.extend_from_slice(&[
                    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
                    0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                ]);
                let padding = rsa::Pkcs1v15Sign {
                    hash_len: Some(32),
                    prefix: prefix.into_boxed_slice(),
                };
                k.sign(padding, &digest).map_err(ferr)
            }
            Secret::P256(k) => {
                let sig: ecdsa::Signature<p256::NistP256> =
                    k.sign_prehash(&digest).map_err(ferr)?;
                Ok(ecdsa_der(&sig.to_bytes()))
            }
            Secret::Bp256(k) => {
                let sig: ecdsa::Signature<bp256::BrainpoolP256r1> =
                    k.sign_prehash(&digest).map_err(ferr)?;
                Ok(ecdsa_der(&sig.to_bytes()))
            }
        }
    }
}

fn ecdsa_der(rs: &[u8]) -> Vec<u8> {
    let (r, s) = rs.split_at(rs.len() / 2);
    seq(&[int(r), int(s)])
}

/// brainpoolP256r1 as SpecifiedECDomain (RFC 5639's values).
fn bp256_explicit() -> Vec<u8> {
    let h = |s: &str| -> Vec<u8> {
        (0..s.len() / 2)
            .filter_map(|i| s.get(2 * i..2 * i + 2))
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .collect()
    };
    let p = h("a9fb57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d1f6e5377");
    let a = h("7d5a0975fc2c3057eef67530417affe7fb8055c126dc5c6ce94a4b44f330b5d9");
    let b = h("26dc5c6ce94a4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc18ff8c07b6");
    let n = h("a9fb57dba1eea9bc3e660a909d838d718c397aa3b561a6f7901e0e82974856a7");
    let mut g = vec![4u8];
    g.extend(h(
        "8bd2aeb9cb7e57cb2c4b482ffc81b7afb9de27e1e3bd23c23a4453bd9ace3262",
    ));
    g.extend(h(
        "547ef835c3dac4fd97f8461a14611dc9c27745132ded8e545c1d54c72f046997",
    ));
    seq(&[
        int(&[1]),
        seq(&[oidv(oid::PRIME_FIELD), int(&p)]),
        seq(&[octets(&a), octets(&b)]),
        octets(&g),
        int(&n),
        int(&[1]),
    ])
}

/// A DER element.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 6);
    write_header(&mut v, tag, content.len());
    v.extend_from_slice(content);
    v
}

/// A SEQUENCE of encoded parts.
pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A SET of encoded parts (in the order given).
pub fn set(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

/// An unsigned INTEGER from big-endian bytes.
pub fn int(b: &[u8]) -> Vec<u8> {
    let skip = b
        .iter()
        .take_while(|&&x| x == 0)
        .count()
        .min(b.len().saturating_sub(1));
    let b = b.get(skip..).unwrap_or_default();
    let mut v = vec![];
    if b.first().is_some_and(|&x| x & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(b);
    tlv(0x02, &v)
}

fn oidv(o: &[u8]) -> Vec<u8> {
    tlv(0x06, o)
}

fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

/// An OCTET STRING.
pub fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

fn bits(b: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(b);
    tlv(0x03, &v)
}

/// `[n]` EXPLICIT around an encoded part.
pub fn ctx(n: u8, inner: &[u8]) -> Vec<u8> {
    tlv(0xA0 | n, inner)
}

fn sha256_alg() -> Vec<u8> {
    seq(&[oidv(oid::SHA256), null()])
}

/// A UTCTime for seconds since 1970 (years 1950 to 2049).
pub fn utc(t: i64) -> Vec<u8> {
    let s = crate::asn1::format_time(t);
    // YYYY-MM-DDTHH:MM:SSZ → YYMMDDHHMMSSZ
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let short = digits.get(2..).unwrap_or_default();
    tlv(0x17, format!("{short}Z").as_bytes())
}

/// A Name `C=<country>, CN=<cn>`.
pub fn name(country: &str, cn: &str) -> Vec<u8> {
    seq(&[
        set(&[seq(&[
            oidv(pki_oid::COUNTRY),
            tlv(0x13, country.as_bytes()),
        ])]),
        set(&[seq(&[oidv(&[0x55, 0x04, 0x03]), tlv(0x0C, cn.as_bytes())])]),
    ])
}

/// A certificate to make.
pub struct CertSpec<'a> {
    /// Serial number.
    pub serial: u64,
    /// Issuer Name (DER).
    pub issuer: Vec<u8>,
    /// Subject Name (DER).
    pub subject: Vec<u8>,
    /// notBefore, seconds since 1970.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
    /// The subject's key.
    pub subject_key: &'a TestKey,
    /// The issuer's key (the subject's own for a self-signed CSCA).
    pub issuer_key: &'a TestKey,
}

fn key_id(k: &TestKey) -> Vec<u8> {
    Sha256::digest(k.spki())
        .get(..20)
        .unwrap_or_default()
        .to_vec()
}

/// Makes a certificate.
pub fn certificate(spec: &CertSpec<'_>) -> Result<Vec<u8>, FixtureError> {
    let ski = seq(&[
        oidv(pki_oid::SKI),
        octets(&octets(&key_id(spec.subject_key))),
    ]);
    let aki = seq(&[
        oidv(pki_oid::AKI),
        octets(&seq(&[tlv(0x80, &key_id(spec.issuer_key))])),
    ]);
    let tbs = seq(&[
        ctx(0, &int(&[2])),
        int(&spec.serial.to_be_bytes()),
        spec.issuer_key.algorithm(),
        spec.issuer.clone(),
        seq(&[utc(spec.not_before), utc(spec.not_after)]),
        spec.subject.clone(),
        spec.subject_key.spki(),
        ctx(3, &seq(&[ski, aki])),
    ]);
    let sig = spec.issuer_key.sign(&tbs)?;
    Ok(seq(&[tbs, spec.issuer_key.algorithm(), bits(&sig)]))
}

/// Makes a CRL by `issuer` revoking `serials`.
pub fn crl(
    issuer: &[u8],
    issuer_key: &TestKey,
    this_update: i64,
    serials: &[u64],
) -> Result<Vec<u8>, FixtureError> {
    let revoked: Vec<Vec<u8>> = serials
        .iter()
        .map(|s| seq(&[int(&s.to_be_bytes()), utc(this_update)]))
        .collect();
    let mut parts = vec![
        int(&[1]),
        issuer_key.algorithm(),
        issuer.to_vec(),
        utc(this_update),
        utc(this_update + 90 * 86_400),
    ];
    if !revoked.is_empty() {
        parts.push(seq(&revoked));
    }
    let tbs = seq(&parts);
    let sig = issuer_key.sign(&tbs)?;
    Ok(seq(&[tbs, issuer_key.algorithm(), bits(&sig)]))
}

/// An EF.SOD to make.
pub struct SodSpec<'a> {
    /// (data group number, its bytes).
    pub data_groups: &'a [(u8, &'a [u8])],
    /// The document signer's certificate (DER).
    pub signer_certificate: &'a [u8],
    /// Its issuer Name and serial, for the SignerInfo.
    pub signer_issuer: &'a [u8],
    /// The signer's serial number.
    pub signer_serial: u64,
    /// The signer's key.
    pub signer_key: &'a TestKey,
    /// signingTime, when given.
    pub signing_time: Option<i64>,
}

/// Makes EF.SOD: SHA-256 hashes of the data groups, signed attributes, the
/// signer's certificate carried.
pub fn sod(spec: &SodSpec<'_>) -> Result<Vec<u8>, FixtureError> {
    let hashes: Vec<Vec<u8>> = spec
        .data_groups
        .iter()
        .map(|(n, b)| seq(&[int(&[*n]), octets(&Sha256::digest(b))]))
        .collect();
    let lds_so = seq(&[int(&[0]), sha256_alg(), seq(&hashes)]);
    let mut attrs = vec![seq(&[
        oidv(pki_oid::CONTENT_TYPE),
        set(&[oidv(pki_oid::LDS_SECURITY_OBJECT)]),
    ])];
    if let Some(t) = spec.signing_time {
        attrs.push(seq(&[oidv(pki_oid::SIGNING_TIME), set(&[utc(t)])]));
    }
    attrs.push(seq(&[
        oidv(pki_oid::MESSAGE_DIGEST),
        set(&[octets(&Sha256::digest(&lds_so))]),
    ]));
    let attrs_content = attrs.concat();
    let signature = spec.signer_key.sign(&tlv(0x31, &attrs_content))?;
    let signer_info = seq(&[
        int(&[1]),
        seq(&[
            spec.signer_issuer.to_vec(),
            int(&spec.signer_serial.to_be_bytes()),
        ]),
        sha256_alg(),
        tlv(0xA0, &attrs_content),
        spec.signer_key.algorithm(),
        octets(&signature),
    ]);
    let signed_data = seq(&[
        int(&[3]),
        set(&[sha256_alg()]),
        seq(&[oidv(pki_oid::LDS_SECURITY_OBJECT), ctx(0, &octets(&lds_so))]),
        tlv(0xA0, spec.signer_certificate),
        set(&[signer_info]),
    ]);
    let content_info = seq(&[oidv(pki_oid::SIGNED_DATA), ctx(0, &signed_data)]);
    Ok(tlv(0x77, &content_info))
}

/// A whole synthetic document: CSCA, signer, data groups and SOD.
pub struct Document {
    /// The CSCA's certificate.
    pub csca: Vec<u8>,
    /// The document signer's certificate.
    pub signer: Vec<u8>,
    /// DG1 (a specimen TD3 zone) and DG2 (opaque bytes unless given).
    pub data_groups: Vec<(u8, Vec<u8>)>,
    /// EF.SOD.
    pub sod: Vec<u8>,
    /// The CSCA's key, to sign CRLs.
    pub csca_key: TestKey,
    /// The CSCA's Name.
    pub csca_name: Vec<u8>,
    /// The signer's serial.
    pub signer_serial: u64,
}

/// 2024-01-01T00:00:00Z, when the synthetic documents are signed.
pub const SIGNED_AT: i64 = 1_704_067_200;

/// The TD3 specimen zone of ICAO 9303 part 4, as DG1.
pub fn specimen_dg1() -> Vec<u8> {
    let zone =
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<L898902C36UTO7408122F1204159ZE184226B<<<<<10";
    // Tag 5F1F: its second byte goes through write_header with the length.
    let mut inner = vec![0x5F];
    write_header(&mut inner, 0x1F, zone.len());
    inner.extend_from_slice(zone.as_bytes());
    tlv(0x61, &inner)
}

/// An element with a two-byte tag such as `5F2E` or `7F61`.
fn tlv2(tag: u16, content: &[u8]) -> Vec<u8> {
    let [first, second] = tag.to_be_bytes();
    let mut v = vec![first];
    write_header(&mut v, second, content.len());
    v.extend_from_slice(content);
    v
}

/// EF.COM for LDS 1.7 and Unicode 4.0.0, listing the data groups' tags
/// (`0x61` DG1, `0x75` DG2, ...).
pub fn ef_com(tags: &[u8]) -> Vec<u8> {
    tlv(
        0x60,
        &[
            tlv2(0x5F01, b"0107"),
            tlv2(0x5F36, b"040000"),
            tlv(0x5C, tags),
        ]
        .concat(),
    )
}

/// DG2 holding one ISO/IEC 19794-5:2005 facial record around `image` (a
/// JPEG or JPEG 2000 file's bytes; the record states JPEG unless the bytes
/// start like a JPEG 2000 file), of `size` pixels, in one biometric
/// information template with its header (ICAO 9303 part 10): what a chip
/// carries, so that the CLI's tests and demonstrations can put a real
/// portrait on a synthetic chip.
pub fn dg2_with_image(image: &[u8], size: (u16, u16)) -> Vec<u8> {
    let jpeg2000 =
        image.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50]) || image.starts_with(&[0xFF, 0x4F]);
    // Facial information block: its length, no feature points, the rest
    // (gender, eyes, hair, features, expression, pose) unspecified.
    let block = 20 + 12 + image.len();
    let mut record = b"FAC\x00010\x00".to_vec();
    record.extend_from_slice(&u32::try_from(14 + block).unwrap_or(u32::MAX).to_be_bytes());
    record.extend_from_slice(&1u16.to_be_bytes());
    record.extend_from_slice(&u32::try_from(block).unwrap_or(u32::MAX).to_be_bytes());
    record.extend_from_slice(&[0; 16]);
    // Image information: full frontal, the data type, the size, 24-bit RGB,
    // a static photograph from an unknown camera, unspecified quality.
    record.extend_from_slice(&[1, u8::from(jpeg2000)]);
    record.extend_from_slice(&size.0.to_be_bytes());
    record.extend_from_slice(&size.1.to_be_bytes());
    record.extend_from_slice(&[1, 2, 0, 0, 0, 0]);
    record.extend_from_slice(image);
    // Biometric header template: ICAO header version 1.1, facial features,
    // format owner ISO/IEC JTC 1/SC 37 (0101), format type 0008 (face).
    let header = tlv(
        0xA1,
        &[
            tlv(0x80, &[1, 1]),
            tlv(0x81, &[2]),
            tlv(0x87, &[1, 1]),
            tlv(0x88, &[0, 8]),
        ]
        .concat(),
    );
    let template = tlv2(0x7F60, &[header, tlv2(0x5F2E, &record)].concat());
    tlv(0x75, &tlv2(0x7F61, &[tlv(0x02, &[1]), template].concat()))
}

/// A synthetic document signed by `signer_kind` under a CSCA of `csca_kind`.
/// `signer_valid` is the signer certificate's validity window.
pub fn document(
    csca_kind: KeyKind,
    signer_kind: KeyKind,
    seed: u64,
    signer_valid: (i64, i64),
) -> Result<Document, FixtureError> {
    let dg2 = tlv(0x75, format!("synthetic face data {seed}").as_bytes());
    document_with_dg2(csca_kind, signer_kind, seed, signer_valid, dg2)
}

/// [`document`] with the DG2 given (say one from [`dg2_with_image`]).
pub fn document_with_dg2(
    csca_kind: KeyKind,
    signer_kind: KeyKind,
    seed: u64,
    signer_valid: (i64, i64),
    dg2: Vec<u8>,
) -> Result<Document, FixtureError> {
    let csca_key = TestKey::generate(csca_kind, seed)?;
    let signer_key = TestKey::generate(signer_kind, seed + 1)?;
    let csca_name = name("UT", "Utopia Test CSCA");
    let csca = certificate(&CertSpec {
        serial: 1,
        issuer: csca_name.clone(),
        subject: csca_name.clone(),
        not_before: SIGNED_AT - 5 * 365 * 86_400,
        not_after: SIGNED_AT + 15 * 365 * 86_400,
        subject_key: &csca_key,
        issuer_key: &csca_key,
    })?;
    let signer_serial = 0x1000 + seed;
    let signer = certificate(&CertSpec {
        serial: signer_serial,
        issuer: csca_name.clone(),
        subject: name("UT", "Utopia Test Document Signer"),
        not_before: signer_valid.0,
        not_after: signer_valid.1,
        subject_key: &signer_key,
        issuer_key: &csca_key,
    })?;
    let dg1 = specimen_dg1();
    let data_groups = vec![(1u8, dg1), (2u8, dg2)];
    let refs: Vec<(u8, &[u8])> = data_groups
        .iter()
        .map(|(n, b)| (*n, b.as_slice()))
        .collect();
    let sod = sod(&SodSpec {
        data_groups: &refs,
        signer_certificate: &signer,
        signer_issuer: &csca_name,
        signer_serial,
        signer_key: &signer_key,
        signing_time: Some(SIGNED_AT),
    })?;
    Ok(Document {
        csca,
        signer,
        data_groups,
        sod,
        csca_key,
        csca_name,
        signer_serial,
    })
}

/// DG3 holding one ISO/IEC 19794-4:2005 finger image record per finger, each
/// in its own biometric information template with its header (ICAO 9303 part
/// 10), as chips carry them: `fingers` are `(position, (width, height),
/// image)` (position 1 right thumb ... 10 left little finger), every image
/// encoded as `compression` (19794-4's code: 2 WSQ, 3 JPEG, 4 JPEG 2000,
/// 5 PNG; 0 raw 8-bit grey) at `ppi` pixels per inch.
pub fn dg3_with_images(compression: u8, ppi: u16, fingers: &[(u8, (u16, u16), &[u8])]) -> Vec<u8> {
    let templates: Vec<Vec<u8>> = fingers
        .iter()
        .map(|(position, (width, height), image)| {
            // General header: FIR, version 010, the record's length, no capture
            // device, acquisition level 31, one image, pixels per inch, scan and
            // image resolution, 8 bits a pixel, the compression, reserved.
            let block = 14 + image.len();
            let mut record = b"FIR\x00010\x00".to_vec();
            record.extend_from_slice(&(32 + block as u64).to_be_bytes()[2..]);
            record.extend_from_slice(&[0, 0, 0, 31, 1, 1]);
            for _ in 0..4 {
                record.extend_from_slice(&ppi.to_be_bytes());
            }
            record.extend_from_slice(&[8, compression, 0, 0]);
            // Finger image header: the block's length, the position, one view
            // (number 1), quality 80, live-scan plain, the size, reserved.
            record.extend_from_slice(&u32::try_from(block).unwrap_or(u32::MAX).to_be_bytes());
            record.extend_from_slice(&[*position, 1, 1, 80, 0]);
            record.extend_from_slice(&width.to_be_bytes());
            record.extend_from_slice(&height.to_be_bytes());
            record.push(0);
            record.extend_from_slice(image);
            // Biometric header template: ICAO header version 1.1, fingerprint,
            // format owner ISO/IEC JTC 1/SC 37 (0101), format type 0007 (finger image).
            let header = tlv(
                0xA1,
                &[
                    tlv(0x80, &[1, 1]),
                    tlv(0x81, &[8]),
                    tlv(0x87, &[1, 1]),
                    tlv(0x88, &[0, 7]),
                ]
                .concat(),
            );
            tlv2(0x7F60, &[header, tlv2(0x5F2E, &record)].concat())
        })
        .collect();
    let count = u8::try_from(fingers.len()).unwrap_or(u8::MAX);
    let group = [vec![tlv(0x02, &[count])], templates].concat().concat();
    tlv(0x63, &tlv2(0x7F61, &group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portrait_dg2_and_ef_com_read_back_and_authenticate() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 9, 8, 7];
        let dg2 = dg2_with_image(&jpeg, (480, 640));
        let faces = crate::parse_dg2(&dg2).expect("DG2 reads");
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].format, crate::ImageFormat::Jpeg);
        assert_eq!(faces[0].size, Some((480, 640)));
        assert_eq!(faces[0].data, jpeg);

        let com = crate::EfCom::parse(&ef_com(&[0x61, 0x75])).expect("EF.COM reads");
        assert_eq!(com.lds_version, "0107");
        assert_eq!(com.tags, vec![0x61, 0x75]);

        let doc = document_with_dg2(
            KeyKind::P256,
            KeyKind::P256,
            7,
            (SIGNED_AT - 86_400, SIGNED_AT + 86_400),
            dg2.clone(),
        )
        .expect("document");
        let mut trust = crate::TrustStore::new();
        trust.add_certificates(&doc.csca).expect("CSCA");
        let dgs: Vec<(u8, &[u8])> = doc
            .data_groups
            .iter()
            .map(|(n, b)| (*n, b.as_slice()))
            .collect();
        assert_eq!(dgs[1].1, dg2.as_slice());
        let report = crate::authenticate(&crate::PassiveAuthInput {
            sod: &doc.sod,
            data_groups: &dgs,
            trust: Some(&trust),
            crl: None,
            now: SIGNED_AT,
        });
        assert!(report.passed(), "{report:?}");
    }
}
