//! Hashes, public keys and signature checks for passive authentication:
//! RSA PKCS#1 v1.5 and RSASSA-PSS, ECDSA on NIST P-256/P-384/P-521 and
//! Brainpool P256r1/P384r1/P512r1, with SHA-1 and SHA-2.
//!
//! Passports often give their EC keys with explicit domain parameters rather
//! than a curve's name; those are matched against the known curves by their
//! prime, coefficients and order, and refused when they match none.
//!
//! Brainpool P512r1 has no RustCrypto curve crate of the generation used here
//! (`bp256`/`bp384` 0.14 exist, no `bp512`), so its ECDSA verification is done
//! in `generic`, on `crypto-bigint`'s Montgomery arithmetic for the field and
//! `num-bigint` for the few operations modulo the order: public data only, so
//! constant time is not needed.

use sha1_v011::Sha1;
use sha2_v011::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::asn1::{self, tag, Asn1Error, Element};

/// Why a signature could not be checked or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A key, parameter or signature is malformed.
    #[error("malformed: {0}")]
    Malformed(String),
    /// An algorithm or curve this crate does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

impl From<Asn1Error> for CryptoError {
    fn from(e: Asn1Error) -> Self {
        Self::Malformed(e.to_string())
    }
}

/// Object identifiers' content octets.
pub mod oid {
    /// SHA-1.
    pub const SHA1: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x1A];
    /// SHA-224.
    pub const SHA224: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04];
    /// SHA-256.
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// SHA-384.
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    /// SHA-512.
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    /// The PKCS#1 arc, 1.2.840.113549.1.1.
    pub const PKCS1: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];
    /// rsaEncryption.
    pub const RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    /// RSASSA-PSS.
    pub const RSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
    /// MGF1.
    pub const MGF1: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08];
    /// id-ecPublicKey.
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    /// prime-field.
    pub const PRIME_FIELD: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x01, 0x01];
    /// ecdsa-with-SHA1.
    pub const ECDSA_SHA1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01];
    /// The ecdsa-with-SHA2 arc (SHA-224 .1 to SHA-512 .4).
    pub const ECDSA_SHA2: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03];
    /// BSI TR-03111 ecdsa-plain-signatures arc (SHA-1 .1 to SHA-512 .5).
    pub const ECDSA_PLAIN: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x01, 0x01, 0x04, 0x01];
    /// NIST P-256 (prime256v1).
    pub const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// NIST P-384.
    pub const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    /// NIST P-521.
    pub const P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
    /// brainpoolP256r1.
    pub const BP256R1: &[u8] = &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07];
    /// brainpoolP384r1.
    pub const BP384R1: &[u8] = &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0B];
    /// brainpoolP512r1.
    pub const BP512R1: &[u8] = &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0D];
}

/// A hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashAlg {
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// The algorithm an OID names.
    pub fn from_oid(o: &[u8]) -> Option<Self> {
        Some(match o {
            oid::SHA1 => Self::Sha1,
            oid::SHA224 => Self::Sha224,
            oid::SHA256 => Self::Sha256,
            oid::SHA384 => Self::Sha384,
            oid::SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    /// From an AlgorithmIdentifier element.
    pub fn from_algorithm(e: &Element<'_>) -> Result<Self, CryptoError> {
        let (o, _) = algorithm(e)?;
        Self::from_oid(o).ok_or_else(|| {
            CryptoError::Unsupported(format!("hash algorithm {}", asn1::oid_string(o)))
        })
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha224 => Sha224::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// The digest's length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The name, as in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha224 => "SHA-224",
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Self::Sha1 => oid::SHA1,
            Self::Sha224 => oid::SHA224,
            Self::Sha256 => oid::SHA256,
            Self::Sha384 => oid::SHA384,
            Self::Sha512 => oid::SHA512,
        }
    }

    /// The DER DigestInfo header that PKCS#1 v1.5 puts before the digest,
    /// with the parameters NULL (`with_null`) or absent: RFC 8017 allows both
    /// readings and issuers have used both.
    fn digest_info_prefix(self, with_null: bool) -> Vec<u8> {
        let o = self.oid();
        let alg_len = 2 + o.len() + if with_null { 2 } else { 0 };
        let mut v = vec![
            0x30,
            (2 + alg_len + 2 + self.output_len()) as u8,
            0x30,
            alg_len as u8,
        ];
        v.push(tag::OID);
        v.push(o.len() as u8);
        v.extend_from_slice(o);
        if with_null {
            v.extend_from_slice(&[0x05, 0x00]);
        }
        v.push(tag::OCTET_STRING);
        v.push(self.output_len() as u8);
        v
    }
}

/// An AlgorithmIdentifier's OID and its parameters (if any).
pub fn algorithm<'a>(e: &Element<'a>) -> Result<(&'a [u8], Option<Element<'a>>), CryptoError> {
    let mut r = e
        .expect(tag::SEQUENCE, "expected an AlgorithmIdentifier")?
        .children();
    let o = r.expect(tag::OID, "expected an algorithm OID")?.value;
    let params = if r.is_empty() {
        None
    } else {
        Some(r.next_element()?)
    };
    Ok((o, params))
}

/// An elliptic curve this crate verifies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
    /// brainpoolP256r1.
    BrainpoolP256r1,
    /// brainpoolP384r1.
    BrainpoolP384r1,
    /// brainpoolP512r1.
    BrainpoolP512r1,
}

/// Domain parameters as hex: p, a, b, n, Gx, Gy (SEC 2 and RFC 5639).
struct Params {
    curve: Curve,
    p: &'static str,
    a: &'static str,
    b: &'static str,
    n: &'static str,
    gx: &'static str,
    gy: &'static str,
}

const CURVES: [Params; 6] = [
    Params {
        curve: Curve::P256,
        p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
        a: "ffffffff00000001000000000000000000000000fffffffffffffffffffffffc",
        b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
        n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        gx: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
        gy: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    },
    Params {
        curve: Curve::P384,
        p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
        a: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffc",
        b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
        n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        gx: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
        gy: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    },
    Params {
        curve: Curve::P521,
        p: "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        a: "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffc",
        b: "51953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
        n: "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        gx: "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66",
        gy: "011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650",
    },
    Params {
        curve: Curve::BrainpoolP256r1,
        p: "a9fb57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d1f6e5377",
        a: "7d5a0975fc2c3057eef67530417affe7fb8055c126dc5c6ce94a4b44f330b5d9",
        b: "26dc5c6ce94a4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc18ff8c07b6",
        n: "a9fb57dba1eea9bc3e660a909d838d718c397aa3b561a6f7901e0e82974856a7",
        gx: "8bd2aeb9cb7e57cb2c4b482ffc81b7afb9de27e1e3bd23c23a4453bd9ace3262",
        gy: "547ef835c3dac4fd97f8461a14611dc9c27745132ded8e545c1d54c72f046997",
    },
    Params {
        curve: Curve::BrainpoolP384r1,
        p: "8cb91e82a3386d280f5d6f7e50e641df152f7109ed5456b412b1da197fb71123acd3a729901d1a71874700133107ec53",
        a: "7bc382c63d8c150c3c72080ace05afa0c2bea28e4fb22787139165efba91f90f8aa5814a503ad4eb04a8c7dd22ce2826",
        b: "04a8c7dd22ce28268b39b55416f0447c2fb77de107dcd2a62e880ea53eeb62d57cb4390295dbc9943ab78696fa504c11",
        n: "8cb91e82a3386d280f5d6f7e50e641df152f7109ed5456b31f166e6cac0425a7cf3ab6af6b7fc3103b883202e9046565",
        gx: "1d1c64f068cf45ffa2a63a81b7c13f6b8847a3e77ef14fe3db7fcafe0cbd10e8e826e03436d646aaef87b2e247d4af1e",
        gy: "8abe1d7520f9c2a45cb1eb8e95cfd55262b70b29feec5864e19c054ff99129280e4646217791811142820341263c5315",
    },
    Params {
        curve: Curve::BrainpoolP512r1,
        p: "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca703308717d4d9b009bc66842aecda12ae6a380e62881ff2f2d82c68528aa6056583a48f3",
        a: "7830a3318b603b89e2327145ac234cc594cbdd8d3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94ca",
        b: "3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94cadc083e67984050b75ebae5dd2809bd638016f723",
        n: "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca70330870553e5c414ca92619418661197fac10471db1d381085ddaddb58796829ca90069",
        gx: "81aee4bdd82ed9645a21322e9c4c6a9385ed9f70b5d916c1b43b62eef4d0098eff3b1f78e2d0d48d50d1687b93b97d5f7c6d5047406a5e688b352209bcb9f822",
        gy: "7dde385d566332ecc0eabfa9cf7822fdf209f70024a57b1aa000c55b881f8111b2dcde494a5f485e5bca4bd88a2763aed1ca2b2fa8f0540678cd1e0f3ad80892",
    },
];

fn hex_bytes(h: &str) -> Vec<u8> {
    h.as_bytes()
        .chunks(2)
        .map(|c| {
            let v = |x: u8| match x {
                b'0'..=b'9' => x - b'0',
                b'a'..=b'f' => x - b'a' + 10,
                _ => 0,
            };
            match c {
                [a, b] => (v(*a) << 4) | v(*b),
                _ => 0,
            }
        })
        .collect()
}

fn strip(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(i..).unwrap_or_default()
}

fn same_uint(a: &[u8], hex: &str) -> bool {
    strip(a) == strip(&hex_bytes(hex))
}

impl Curve {
    fn params(self) -> &'static Params {
        // CURVES holds one entry per variant, in declaration order.
        let i = match self {
            Self::P256 => 0,
            Self::P384 => 1,
            Self::P521 => 2,
            Self::BrainpoolP256r1 => 3,
            Self::BrainpoolP384r1 => 4,
            Self::BrainpoolP512r1 => 5,
        };
        &CURVES[i]
    }

    /// The size of a field element or scalar in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Self::P256 | Self::BrainpoolP256r1 => 32,
            Self::P384 | Self::BrainpoolP384r1 => 48,
            Self::P521 => 66,
            Self::BrainpoolP512r1 => 64,
        }
    }

    fn from_named(o: &[u8]) -> Option<Self> {
        Some(match o {
            oid::P256 => Self::P256,
            oid::P384 => Self::P384,
            oid::P521 => Self::P521,
            oid::BP256R1 => Self::BrainpoolP256r1,
            oid::BP384R1 => Self::BrainpoolP384r1,
            oid::BP512R1 => Self::BrainpoolP512r1,
            _ => return None,
        })
    }

    /// The curve that ECParameters (named or explicit) describe.
    pub fn from_parameters(params: &Element<'_>) -> Result<Self, CryptoError> {
        if params.tag == tag::OID {
            return Self::from_named(params.value).ok_or_else(|| {
                CryptoError::Unsupported(format!("curve {}", asn1::oid_string(params.value)))
            });
        }
        // SpecifiedECDomain: version, fieldID {prime-field, p}, curve {a, b,
        // seed?}, base, order, cofactor?
        let mut r = params
            .expect(
                tag::SEQUENCE,
                "EC parameters are neither a name nor explicit",
            )?
            .children();
        r.expect(tag::INTEGER, "EC parameters: version")?;
        let field = r.expect(tag::SEQUENCE, "EC parameters: fieldID")?;
        let mut f = field.children();
        if f.expect(tag::OID, "EC parameters: field type")?.value != oid::PRIME_FIELD {
            return Err(CryptoError::Unsupported(
                "EC parameters over a field other than a prime field".into(),
            ));
        }
        let p = f
            .expect(tag::INTEGER, "EC parameters: prime")?
            .uint_bytes()?;
        let mut c = r.expect(tag::SEQUENCE, "EC parameters: curve")?.children();
        let a = c.expect(tag::OCTET_STRING, "EC parameters: a")?.value;
        let b = c.expect(tag::OCTET_STRING, "EC parameters: b")?.value;
        let base = r.expect(tag::OCTET_STRING, "EC parameters: base")?.value;
        let n = r
            .expect(tag::INTEGER, "EC parameters: order")?
            .uint_bytes()?;
        let found = CURVES.iter().find(|k| {
            same_uint(p, k.p) && same_uint(a, k.a) && same_uint(b, k.b) && same_uint(n, k.n)
        });
        let k = found.ok_or_else(|| {
            CryptoError::Unsupported("explicit EC parameters of no known curve".into())
        })?;
        // The generator must be the curve's own (uncompressed, or compressed
        // with the x coordinate alone to compare).
        let gx_ok = match base.split_first() {
            Some((4, xy)) => {
                let (x, y) = xy.split_at(xy.len() / 2);
                same_uint(x, k.gx) && same_uint(y, k.gy)
            }
            Some((2 | 3, x)) => same_uint(x, k.gx),
            _ => false,
        };
        if !gx_ok {
            return Err(CryptoError::Unsupported(
                "explicit EC parameters with a non-standard generator".into(),
            ));
        }
        Ok(k.curve)
    }
}

/// A subject public key this crate can verify with.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// RSA.
    Rsa(Box<rsa::PublicKey>),
    /// An EC point (SEC1 encoding) on a known curve.
    Ec {
        /// The curve.
        curve: Curve,
        /// The point, SEC1-encoded.
        point: Vec<u8>,
    },
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo.
    pub fn from_spki(spki: &Element<'_>) -> Result<Self, CryptoError> {
        let mut r = spki
            .expect(tag::SEQUENCE, "expected a SubjectPublicKeyInfo")?
            .children();
        let alg = r.next_element()?;
        let key = r
            .expect(tag::BIT_STRING, "expected a public key")?
            .bit_string()?;
        let (o, params) = algorithm(&alg)?;
        match o {
            oid::RSA | oid::RSA_PSS => {
                use rsa::pkcs1::DecodeRsaPublicKey as _;
                let k = rsa::PublicKey::from_pkcs1_der(key)
                    .map_err(|e| CryptoError::Malformed(format!("RSA public key: {e}")))?;
                Ok(Self::Rsa(Box::new(k)))
            }
            oid::EC_PUBLIC_KEY => {
                let params = params
                    .ok_or_else(|| CryptoError::Malformed("EC key without parameters".into()))?;
                Ok(Self::Ec {
                    curve: Curve::from_parameters(&params)?,
                    point: key.to_vec(),
                })
            }
            _ => Err(CryptoError::Unsupported(format!(
                "public key algorithm {}",
                asn1::oid_string(o)
            ))),
        }
    }

    /// A short description (`RSA 2048`, `ECDSA BrainpoolP256r1`).
    pub fn describe(&self) -> String {
        match self {
            Self::Rsa(k) => {
                use rsa::traits::PublicKeyParts as _;
                format!("RSA {}", k.size() * 8)
            }
            Self::Ec { curve, .. } => format!("EC {curve:?}"),
        }
    }
}

/// A signature scheme with its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum Scheme {
    /// RSA PKCS#1 v1.5.
    RsaPkcs1 {
        /// The hash.
        hash: HashAlg,
    },
    /// RSASSA-PSS with MGF1 over the same hash.
    RsaPss {
        /// The hash.
        hash: HashAlg,
        /// The salt's length in bytes.
        salt_len: usize,
    },
    /// ECDSA, signature DER `SEQUENCE { r, s }`.
    Ecdsa {
        /// The hash.
        hash: HashAlg,
    },
    /// ECDSA, signature `r || s` (BSI TR-03111 plain format).
    EcdsaPlain {
        /// The hash.
        hash: HashAlg,
    },
}

impl Scheme {
    /// The hash applied to the message.
    pub fn hash(self) -> HashAlg {
        match self {
            Self::RsaPkcs1 { hash }
            | Self::RsaPss { hash, .. }
            | Self::Ecdsa { hash }
            | Self::EcdsaPlain { hash } => hash,
        }
    }

    /// The scheme a signature AlgorithmIdentifier names. `digest` is the hash
    /// given apart (a CMS SignerInfo's digestAlgorithm), used where the
    /// identifier names only the key type (`rsaEncryption`).
    pub fn from_algorithm(e: &Element<'_>, digest: Option<HashAlg>) -> Result<Self, CryptoError> {
        let (o, params) = algorithm(e)?;
        let need_digest = || {
            digest
                .ok_or_else(|| CryptoError::Malformed("signature algorithm without a hash".into()))
        };
        let unsupported =
            || CryptoError::Unsupported(format!("signature algorithm {}", asn1::oid_string(o)));
        if o == oid::RSA {
            return Ok(Self::RsaPkcs1 {
                hash: need_digest()?,
            });
        }
        if o == oid::RSA_PSS {
            return pss_params(params.as_ref());
        }
        if o == oid::ECDSA_SHA1 {
            return Ok(Self::Ecdsa {
                hash: HashAlg::Sha1,
            });
        }
        if o == oid::EC_PUBLIC_KEY {
            return Ok(Self::Ecdsa {
                hash: need_digest()?,
            });
        }
        if let Some(last) = o.strip_prefix(oid::PKCS1) {
            let hash = match last {
                [0x05] => HashAlg::Sha1,
                [0x0E] => HashAlg::Sha224,
                [0x0B] => HashAlg::Sha256,
                [0x0C] => HashAlg::Sha384,
                [0x0D] => HashAlg::Sha512,
                _ => return Err(unsupported()),
            };
            return Ok(Self::RsaPkcs1 { hash });
        }
        if let Some(last) = o.strip_prefix(oid::ECDSA_SHA2) {
            let hash = match last {
                [1] => HashAlg::Sha224,
                [2] => HashAlg::Sha256,
                [3] => HashAlg::Sha384,
                [4] => HashAlg::Sha512,
                _ => return Err(unsupported()),
            };
            return Ok(Self::Ecdsa { hash });
        }
        if let Some(last) = o.strip_prefix(oid::ECDSA_PLAIN) {
            let hash = match last {
                [1] => HashAlg::Sha1,
                [2] => HashAlg::Sha224,
                [3] => HashAlg::Sha256,
                [4] => HashAlg::Sha384,
                [5] => HashAlg::Sha512,
                _ => return Err(unsupported()),
            };
            return Ok(Self::EcdsaPlain { hash });
        }
        Err(unsupported())
    }
}

/// RSASSA-PSS-params (RFC 4055): every field has a default (SHA-1, MGF1 with
/// SHA-1, salt 20), and MGF1 must use the same hash as the message, the only
/// combination the RSA crate verifies and the only one ICAO profiles use.
fn pss_params(params: Option<&Element<'_>>) -> Result<Scheme, CryptoError> {
    let mut hash = HashAlg::Sha1;
    let mut mgf_hash = HashAlg::Sha1;
    let mut salt_len = 20usize;
    if let Some(p) = params.filter(|p| p.tag != tag::NULL) {
        let mut r = p.expect(tag::SEQUENCE, "RSASSA-PSS parameters")?.children();
        while !r.is_empty() {
            let f = r.next_element()?;
            let mut inner = f.children();
            let v = inner.next_element()?;
            if f.is_context(0) {
                hash = HashAlg::from_algorithm(&v)?;
            } else if f.is_context(1) {
                let (mo, mp) = algorithm(&v)?;
                if mo != oid::MGF1 {
                    return Err(CryptoError::Unsupported(
                        "PSS mask generation other than MGF1".into(),
                    ));
                }
                let mp = mp.ok_or_else(|| CryptoError::Malformed("MGF1 without a hash".into()))?;
                mgf_hash = HashAlg::from_algorithm(&mp)?;
            } else if f.is_context(2) {
                salt_len = usize::try_from(v.small_uint()?)
                    .map_err(|_| CryptoError::Malformed("PSS salt length".into()))?;
            } else if f.is_context(3) && v.small_uint()? != 1 {
                return Err(CryptoError::Unsupported(
                    "PSS trailer field other than 1".into(),
                ));
            }
        }
    }
    if hash != mgf_hash {
        return Err(CryptoError::Unsupported(format!(
            "PSS with {} and MGF1 over {}",
            hash.name(),
            mgf_hash.name()
        )));
    }
    Ok(Scheme::RsaPss { hash, salt_len })
}

/// Verifies `signature` over `message` with `key` under `scheme`.
pub fn verify(
    key: &PublicKey,
    scheme: Scheme,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    let digest = scheme.hash().digest(message);
    verify_digest(key, scheme, &digest, signature)
}

/// Verifies `signature` over a message whose digest (under `scheme`'s hash)
/// is `digest`.
pub fn verify_digest(
    key: &PublicKey,
    scheme: Scheme,
    digest: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    match (key, scheme) {
        (PublicKey::Rsa(k), Scheme::RsaPkcs1 { hash }) => {
            for with_null in [true, false] {
                let padding = rsa::Pkcs1v15Sign {
                    hash_len: Some(hash.output_len()),
                    prefix: hash.digest_info_prefix(with_null).into_boxed_slice(),
                };
                if k.verify(padding, digest, signature).is_ok() {
                    return Ok(());
                }
            }
            Err(CryptoError::BadSignature)
        }
        (PublicKey::Rsa(k), Scheme::RsaPss { hash, salt_len }) => {
            let ok = match hash {
                HashAlg::Sha1 => k.verify(pss::<Sha1>(salt_len), digest, signature),
                HashAlg::Sha224 => k.verify(pss::<Sha224>(salt_len), digest, signature),
                HashAlg::Sha256 => k.verify(pss::<Sha256>(salt_len), digest, signature),
                HashAlg::Sha384 => k.verify(pss::<Sha384>(salt_len), digest, signature),
                HashAlg::Sha512 => k.verify(pss::<Sha512>(salt_len), digest, signature),
            };
            ok.map_err(|_| CryptoError::BadSignature)
        }
        (PublicKey::Ec { curve, point }, Scheme::Ecdsa { .. } | Scheme::EcdsaPlain { .. }) => {
            let (r, s) = if matches!(scheme, Scheme::Ecdsa { .. }) {
                der_signature(signature)?
            } else {
                if !signature.len().is_multiple_of(2) {
                    return Err(CryptoError::Malformed(
                        "plain ECDSA signature of odd length".into(),
                    ));
                }
                signature.split_at(signature.len() / 2)
            };
            ecdsa_verify(*curve, point, digest, r, s)
        }
        _ => Err(CryptoError::Unsupported(
            "the signature algorithm does not fit the key type".into(),
        )),
    }
}

fn pss<D: Digest + sha2_v011::digest::FixedOutputReset>(salt_len: usize) -> rsa::Pss<D> {
    rsa::Pss {
        blinded: false,
        digest: D::new(),
        salt_len: Some(salt_len),
    }
}

/// `SEQUENCE { r INTEGER, s INTEGER }` → r and s without leading zeros.
fn der_signature(sig: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let seq = asn1::read_one(sig)?.expect(tag::SEQUENCE, "ECDSA signature")?;
    let mut r = seq.children();
    let a = r.expect(tag::INTEGER, "ECDSA r")?.uint_bytes()?;
    let b = r.expect(tag::INTEGER, "ECDSA s")?.uint_bytes()?;
    if !r.is_empty() {
        return Err(CryptoError::Malformed(
            "ECDSA signature has extra fields".into(),
        ));
    }
    Ok((a, b))
}

/// Left-pads a big-endian integer to `len` bytes.
fn pad(x: &[u8], len: usize) -> Result<Vec<u8>, CryptoError> {
    let x = strip(x);
    if x.len() > len {
        return Err(CryptoError::BadSignature);
    }
    let mut v = vec![0u8; len - x.len()];
    v.extend_from_slice(x);
    Ok(v)
}

fn ecdsa_verify(
    curve: Curve,
    point: &[u8],
    digest: &[u8],
    r: &[u8],
    s: &[u8],
) -> Result<(), CryptoError> {
    use ecdsa::signature::hazmat::PrehashVerifier as _;
    let n = curve.field_len();
    let mut rs = pad(r, n)?;
    rs.extend_from_slice(&pad(s, n)?);
    let bad_key = |_| CryptoError::Malformed(format!("{curve:?} public key"));
    let bad = |_| CryptoError::BadSignature;
    macro_rules! with {
        ($c:ty) => {{
            let key = ecdsa::VerifyingKey::<$c>::from_sec1_bytes(point).map_err(bad_key)?;
            let sig = ecdsa::Signature::<$c>::from_slice(&rs).map_err(bad)?;
            key.verify_prehash(digest, &sig).map_err(bad)
        }};
    }
    match curve {
        Curve::P256 => with!(p256::NistP256),
        Curve::P384 => with!(p384::NistP384),
        Curve::P521 => with!(p521::NistP521),
        Curve::BrainpoolP256r1 => with!(bp256::BrainpoolP256r1),
        Curve::BrainpoolP384r1 => with!(bp384::BrainpoolP384r1),
        Curve::BrainpoolP512r1 => generic::verify(curve.params(), point, digest, r, s),
    }
}

/// ECDSA verification on brainpoolP512r1, the one curve here without a
/// crate: field arithmetic in Montgomery form on `crypto-bigint` with the
/// prime fixed at compile time (a division per product on `num-bigint` was
/// about twenty times slower), scalars mod n on `num-bigint` (a handful of
/// operations). Jacobian coordinates; everything is public data, so nothing
/// needs to run in constant time.
mod generic {
    use crypto_bigint::modular::ConstMontyForm;
    use crypto_bigint::U512;
    use num_bigint::BigUint;

    use super::{hex_bytes, CryptoError, Params};

    const P: &str = "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca703308717d4d9b009bc66842aecda12ae6a380e62881ff2f2d82c68528aa6056583a48f3";

    crypto_bigint::const_monty_params!(Bp512Prime, U512, P, "brainpoolP512r1's prime p");

    type Fe = ConstMontyForm<Bp512Prime, { U512::LIMBS }>;

    struct Field {
        p: BigUint,
        a: Fe,
    }

    /// A point in Jacobian coordinates; `z == 0` is the point at infinity.
    #[derive(Clone)]
    struct Jac {
        x: Fe,
        y: Fe,
        z: Fe,
    }

    /// 64 big-endian bytes of a value known to be below 2^512.
    fn to_u512(v: &BigUint) -> Option<U512> {
        let b = v.to_bytes_be();
        let pad = 64usize.checked_sub(b.len())?;
        let mut bytes = [0u8; 64];
        bytes.get_mut(pad..)?.copy_from_slice(&b);
        Some(U512::from_be_slice(&bytes))
    }

    impl Field {
        fn new(p: BigUint, a: &BigUint) -> Option<Self> {
            // The Montgomery parameters are brainpoolP512r1's, fixed above.
            if p != uint(P) {
                return None;
            }
            let a = Fe::new(&to_u512(a)?);
            Some(Self { p, a })
        }

        fn fe(&self, v: &BigUint) -> Option<Fe> {
            Some(Fe::new(&to_u512(&(v % &self.p))?))
        }

        fn zero(&self) -> Fe {
            Fe::ZERO
        }

        fn is_zero(&self, x: &Fe) -> bool {
            x.as_montgomery() == self.zero().as_montgomery()
        }

        fn eq(x: &Fe, y: &Fe) -> bool {
            x.as_montgomery() == y.as_montgomery()
        }

        fn infinity(&self) -> Jac {
            Jac {
                x: Fe::ONE,
                y: Fe::ONE,
                z: self.zero(),
            }
        }

        fn double(&self, q: &Jac) -> Jac {
            if self.is_zero(&q.z) || self.is_zero(&q.y) {
                return self.infinity();
            }
            let yy = q.y.square();
            let s = (q.x * yy).double().double();
            let zz = q.z.square();
            let xx = q.x.square();
            let m = xx.double() + xx + self.a * zz.square();
            let x = m.square() - s.double();
            let yyyy8 = yy.square().double().double().double();
            let y = m * (s - x) - yyyy8;
            let z = (q.y * q.z).double();
            Jac { x, y, z }
        }

        fn add(&self, p1: &Jac, p2: &Jac) -> Jac {
            if self.is_zero(&p1.z) {
                return p2.clone();
            }
            if self.is_zero(&p2.z) {
                return p1.clone();
            }
            let z1z1 = p1.z.square();
            let z2z2 = p2.z.square();
            let u1 = p1.x * z2z2;
            let u2 = p2.x * z1z1;
            let s1 = p1.y * p2.z * z2z2;
            let s2 = p2.y * p1.z * z1z1;
            if Self::eq(&u1, &u2) {
                return if Self::eq(&s1, &s2) {
                    self.double(p1)
                } else {
                    self.infinity()
                };
            }
            let h = u2 - u1;
            let r = s2 - s1;
            let hh = h.square();
            let hhh = h * hh;
            let v = u1 * hh;
            let x = r.square() - hhh - v.double();
            let y = r * (v - x) - s1 * hhh;
            let z = p1.z * p2.z * h;
            Jac { x, y, z }
        }

        /// The affine x coordinate, as an integer.
        fn affine_x(&self, q: &Jac) -> Option<BigUint> {
            if self.is_zero(&q.z) {
                return None;
            }
            // p is prime: z^(p-2) is z's inverse.
            let z = BigUint::from_bytes_be(&q.z.retrieve().to_be_bytes());
            let zi = self.fe(&z.modpow(&(&self.p - 2u32), &self.p))?;
            let x = q.x * zi.square();
            Some(BigUint::from_bytes_be(&x.retrieve().to_be_bytes()))
        }
    }

    fn uint(h: &str) -> BigUint {
        BigUint::from_bytes_be(&hex_bytes(h))
    }

    pub(super) fn verify(
        k: &Params,
        point: &[u8],
        digest: &[u8],
        r: &[u8],
        s: &[u8],
    ) -> Result<(), CryptoError> {
        let unsupported = || CryptoError::Unsupported("a curve other than brainpoolP512r1".into());
        let p = uint(k.p);
        let f = Field::new(p.clone(), &uint(k.a)).ok_or_else(unsupported)?;
        let b = uint(k.b);
        let n = uint(k.n);
        let len = (p.bits() as usize).div_ceil(8);
        let (qx, qy) = match point.split_first() {
            Some((4, xy)) if xy.len() == 2 * len => xy.split_at(len),
            _ => {
                return Err(CryptoError::Malformed(
                    "EC public key is not an uncompressed point".into(),
                ))
            }
        };
        let (qx, qy) = (BigUint::from_bytes_be(qx), BigUint::from_bytes_be(qy));
        // y^2 = x^3 + ax + b, checked on integers (once per key).
        let on_curve = (&qy * &qy) % &p == (&qx * &qx * &qx + uint(k.a) * &qx + &b) % &p;
        if qx >= p || qy >= p || !on_curve {
            return Err(CryptoError::Malformed(
                "EC public key is not on the curve".into(),
            ));
        }
        let (r, s) = (BigUint::from_bytes_be(r), BigUint::from_bytes_be(s));
        if r == BigUint::ZERO || s == BigUint::ZERO || r >= n || s >= n {
            return Err(CryptoError::BadSignature);
        }
        // The digest's leftmost bits, as many as the order has.
        let mut e = BigUint::from_bytes_be(digest);
        let dbits = digest.len() as u64 * 8;
        if dbits > n.bits() {
            e >>= dbits - n.bits();
        }
        let w = s.modpow(&(&n - 2u32), &n);
        let u1 = (&e * &w) % &n;
        let u2 = (&r * &w) % &n;
        let one = Fe::ONE;
        let fe = |v: &BigUint| f.fe(v).ok_or_else(unsupported);
        let g = Jac {
            x: fe(&uint(k.gx))?,
            y: fe(&uint(k.gy))?,
            z: one,
        };
        let q = Jac {
            x: fe(&qx)?,
            y: fe(&qy)?,
            z: one,
        };
        // Shamir's trick: u1·G + u2·Q in one pass of doublings.
        let gq = f.add(&g, &q);
        let mut acc = f.infinity();
        for i in (0..n.bits()).rev() {
            acc = f.double(&acc);
            match (u1.bit(i), u2.bit(i)) {
                (true, true) => acc = f.add(&acc, &gq),
                (true, false) => acc = f.add(&acc, &g),
                (false, true) => acc = f.add(&acc, &q),
                (false, false) => {}
            }
        }
        let x = f.affine_x(&acc).ok_or(CryptoError::BadSignature)?;
        if x % &n == r {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brainpool_p512_verifier_is_for_that_curve_only() {
        // Its correctness is tested on the real German and Finnish SODs
        // (tests/passive_auth_vectors.rs), whose CSCAs use brainpoolP512r1.
        use ecdsa::signature::hazmat::PrehashSigner as _;
        let sk = ecdsa::SigningKey::<p256::NistP256>::from_slice(&[7u8; 32]).unwrap();
        let digest = HashAlg::Sha256.digest(b"message");
        let sig: ecdsa::Signature<p256::NistP256> = sk.sign_prehash(&digest).unwrap();
        let point = sk.verifying_key().to_sec1_point(false);
        let bytes = sig.to_bytes();
        let (r, s) = bytes.split_at(32);
        assert!(matches!(
            generic::verify(Curve::P256.params(), point.as_bytes(), &digest, r, s),
            Err(CryptoError::Unsupported(_))
        ));
        // A point not on the curve is refused before any arithmetic.
        let params = Curve::BrainpoolP512r1.params();
        let mut bogus = vec![4u8];
        bogus.extend([1u8; 128]);
        assert!(matches!(
            generic::verify(params, &bogus, &digest, &[1], &[1]),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn digest_info_prefixes_are_der() {
        assert_eq!(
            HashAlg::Sha256.digest_info_prefix(true),
            hex_bytes("3031300d060960864801650304020105000420")
        );
        assert_eq!(
            HashAlg::Sha1.digest_info_prefix(true),
            hex_bytes("3021300906052b0e03021a05000414")
        );
    }
}
