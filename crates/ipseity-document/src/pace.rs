//! PACE on the terminal's side (ICAO 9303 part 11, section 4.4), with the
//! generic mapping over ECDH: the password key from the zone's key information,
//! the chip's encrypted nonce, the mapped generator, the ephemeral key agreement,
//! the session keys and the mutual authentication tokens. Chips issued since about
//! 2014 offer PACE beside, or instead of, BAC.
//!
//! Supported: `id-PACE-ECDH-GM-AES-CBC-CMAC-128/192/256` on the standardized
//! domain parameters 12 (NIST P-256) and 13 (brainpoolP256r1), the pairs the
//! chips in circulation announce most; other mappings (integrated, chip
//! authentication) and DH groups are refused with a clear error. The elliptic-curve
//! arithmetic is the RustCrypto crates' (variable-time multiplication: the keys
//! are the terminal's, fresh for each session, and live for one protocol run).
//! Secure messaging under the AES session keys follows ([`PaceSession::channel`]).

use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::bac::{split_status, AccessError, Chip};
use crate::sm::{aes_block, aes_cmac8, SecureChannel};

/// `id-PACE-ECDH-GM-AES-CBC-CMAC-` without its last arc (2: AES-128, 3: 192, 4: 256).
const ECDH_GM_AES: [u8; 9] = [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02];

/// A `PACEInfo` of EF.CardAccess: the protocol and the domain parameters a chip offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaceInfo {
    /// The protocol's object identifier (content bytes, without tag and length).
    pub oid: Vec<u8>,
    /// The protocol version (2).
    pub version: u32,
    /// The standardized domain parameter id, when given.
    pub parameter_id: Option<u32>,
}

impl PaceInfo {
    /// Session key length in bytes, when the protocol is one this module runs.
    pub(crate) fn aes_key_len(&self) -> Option<usize> {
        if self.oid.len() != 10 || self.oid[..9] != ECDH_GM_AES {
            return None;
        }
        match self.oid[9] {
            2 => Some(16),
            3 => Some(24),
            4 => Some(32),
            _ => None,
        }
    }

    pub(crate) fn curve(&self) -> Option<Curve> {
        match self.parameter_id {
            Some(12) => Some(Curve::P256),
            Some(13) => Some(Curve::BrainpoolP256r1),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    BrainpoolP256r1,
}

/// Reads one DER element at the start of `b`: (tag, content, rest). Short and long
/// lengths up to four bytes; EF.CardAccess is small, so anything larger is malformed.
fn der(b: &[u8]) -> Result<(u8, &[u8], &[u8]), AccessError> {
    let bad = AccessError::Malformed("EF.CardAccess is not DER");
    let (&tag, rest) = b.split_first().ok_or(bad.clone())?;
    let (&l0, rest) = rest.split_first().ok_or(bad.clone())?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad);
        }
        let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn der_uint(c: &[u8]) -> Result<u32, AccessError> {
    if c.is_empty() || c.len() > 4 {
        return Err(AccessError::Malformed(
            "an INTEGER out of range in EF.CardAccess",
        ));
    }
    Ok(c.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x)))
}

/// The `PACEInfo`s of EF.CardAccess (a SET OF SecurityInfo; other infos are skipped).
pub fn parse_card_access(bytes: &[u8]) -> Result<Vec<PaceInfo>, AccessError> {
    let (tag, mut set, _) = der(bytes)?;
    if tag != 0x31 {
        return Err(AccessError::Malformed("EF.CardAccess is not a SET"));
    }
    let mut out = Vec::new();
    while !set.is_empty() {
        let (tag, info, rest) = der(set)?;
        set = rest;
        if tag != 0x30 {
            continue;
        }
        let (t, oid, fields) = der(info)?;
        // PACEInfo: id-PACE arcs 0.4.0.127.0.7.2.2.4.*.
        if t != 0x06 || oid.len() != 10 || oid[..8] != ECDH_GM_AES[..8] {
            continue;
        }
        let (t, version, fields) = der(fields)?;
        if t != 0x02 {
            return Err(AccessError::Malformed("PACEInfo without a version"));
        }
        let parameter_id = match der(fields) {
            Ok((0x02, p, _)) => Some(der_uint(p)?),
            _ => None,
        };
        out.push(PaceInfo {
            oid: oid.to_vec(),
            version: der_uint(version)?,
            parameter_id,
        });
    }
    Ok(out)
}

/// The PACEInfo this module can run, of those a chip offers: the generic mapping with
/// the longest AES key, on a supported curve; `None` when there is none (a chip offering
/// only other mappings needs BAC or another implementation).
pub fn supported(infos: &[PaceInfo]) -> Option<&PaceInfo> {
    infos
        .iter()
        .filter(|i| i.curve().is_some())
        .filter_map(|i| i.aes_key_len().map(|k| (k, i)))
        .max_by_key(|(k, _)| *k)
        .map(|(_, i)| i)
}

/// `K`, the password's key: SHA-1 of the zone's key information (document number,
/// date of birth, date of expiry, each with its check digit).
pub fn password_key(key_information: &str) -> [u8; 20] {
    Sha1::digest(key_information.as_bytes()).into()
}

/// 9303 part 11's key derivation for AES: SHA-1 (AES-128) or SHA-256 (AES-192 and
/// AES-256) of the secret and a 32-bit counter (1 encryption, 2 MAC, 3 password),
/// cut to the key length.
pub fn kdf_aes(secret: &[u8], counter: u32, key_len: usize) -> Vec<u8> {
    let d: Vec<u8> = if key_len == 16 {
        let mut h = Sha1::new();
        h.update(secret);
        h.update(counter.to_be_bytes());
        h.finalize().to_vec()
    } else {
        let mut h = Sha256::new();
        h.update(secret);
        h.update(counter.to_be_bytes());
        h.finalize().to_vec()
    };
    d[..key_len.min(d.len())].to_vec()
}

/// The authentication token's input: a public key data object (`7F49`) holding the
/// protocol's OID and the other side's ephemeral public point.
pub fn token_input(oid: &[u8], point: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x06, oid.len() as u8];
    inner.extend_from_slice(oid);
    inner.push(0x86);
    inner.push(point.len() as u8);
    inner.extend_from_slice(point);
    let mut out = vec![0x7F, 0x49, inner.len() as u8];
    out.extend_from_slice(&inner);
    out
}

/// The terminal's private keys for one run: for the mapping and for the key
/// agreement, each 32 big-endian bytes below the group order.
#[derive(Clone)]
pub struct TerminalKeys {
    /// The mapping key.
    pub mapping: [u8; 32],
    /// The ephemeral key-agreement key.
    pub agreement: [u8; 32],
}

impl std::fmt::Debug for TerminalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalKeys(..)")
    }
}

/// What a successful run established.
#[derive(Clone, PartialEq, Eq)]
pub struct PaceSession {
    /// The protocol run.
    pub info: PaceInfo,
    /// Session encryption key.
    pub ks_enc: Vec<u8>,
    /// Session MAC key.
    pub ks_mac: Vec<u8>,
    /// The chip's ephemeral public point (uncompressed), kept for chip authentication.
    pub chip_ephemeral: Vec<u8>,
}

impl std::fmt::Debug for PaceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach a log.
        write!(f, "PaceSession({:?}, ..)", self.info)
    }
}

impl PaceSession {
    /// Secure messaging under the session's AES keys, its counter at zero.
    pub fn channel(&self) -> Result<SecureChannel, AccessError> {
        SecureChannel::aes(&self.ks_enc, &self.ks_mac)
    }
}

/// The curve steps of the generic mapping, for one curve type.
macro_rules! ec_steps {
    ($module:ident, $curve:ty) => {
        mod $module {
            use elliptic_curve::group::Group as _;
            use elliptic_curve::point::AffineCoordinates as _;
            use elliptic_curve::sec1::{FromSec1Point as _, Sec1Point, ToSec1Point as _};
            #[allow(unused_imports)] // used by one curve's scalar type, not the other's
            use elliptic_curve::Field as _;
            use elliptic_curve::PrimeField as _;

            use crate::bac::AccessError;

            type Affine = elliptic_curve::AffinePoint<$curve>;
            type Projective = elliptic_curve::ProjectivePoint<$curve>;
            type Scalar = elliptic_curve::Scalar<$curve>;

            pub fn scalar(bytes: &[u8]) -> Result<Scalar, AccessError> {
                let mut repr = elliptic_curve::FieldBytes::<$curve>::default();
                if bytes.len() > repr.len() {
                    return Err(AccessError::Malformed(
                        "a scalar longer than the group order",
                    ));
                }
                let off = repr.len() - bytes.len();
                repr[off..].copy_from_slice(bytes);
                Option::<Scalar>::from(Scalar::from_repr(repr))
                    .filter(|s| !bool::from(s.is_zero()))
                    .ok_or(AccessError::Malformed("a scalar out of range"))
            }

            pub fn point(bytes: &[u8]) -> Result<Projective, AccessError> {
                let bad = AccessError::Malformed("the chip's point is not on the curve");
                let enc = Sec1Point::<$curve>::from_bytes(bytes).map_err(|_| bad.clone())?;
                let p = Option::<Affine>::from(Affine::from_sec1_point(&enc)).ok_or(bad.clone())?;
                let p = Projective::from(p);
                if bool::from(p.is_identity()) {
                    return Err(bad);
                }
                Ok(p)
            }

            pub fn encode(p: &Projective) -> Vec<u8> {
                p.to_affine().to_sec1_point(false).as_bytes().to_vec()
            }

            /// The terminal's mapping point: its mapping key times the curve's generator.
            pub fn mapping_point(key: &[u8]) -> Result<Vec<u8>, AccessError> {
                Ok(encode(&(Projective::generator() * scalar(key)?)))
            }

            /// The mapped generator: the nonce times the generator, plus the shared
            /// point (the terminal's mapping key times the chip's mapping point).
            pub fn mapped_generator(
                nonce: &[u8],
                key: &[u8],
                chip_mapping: &[u8],
            ) -> Result<Vec<u8>, AccessError> {
                let h = point(chip_mapping)? * scalar(key)?;
                let g = Projective::generator() * scalar(nonce)? + h;
                if bool::from(g.is_identity()) {
                    return Err(AccessError::Authentication(
                        "the mapped generator is the identity",
                    ));
                }
                Ok(encode(&g))
            }

            /// The terminal's ephemeral point on the mapped generator.
            pub fn ephemeral(generator: &[u8], key: &[u8]) -> Result<Vec<u8>, AccessError> {
                Ok(encode(&(point(generator)? * scalar(key)?)))
            }

            /// The shared secret: the x-coordinate of the key times the chip's point.
            pub fn shared_x(key: &[u8], chip_ephemeral: &[u8]) -> Result<Vec<u8>, AccessError> {
                let k = (point(chip_ephemeral)? * scalar(key)?).to_affine();
                Ok(k.x().to_vec())
            }

            pub const OPS: super::Ops = super::Ops {
                mapping_point,
                mapped_generator,
                ephemeral,
                shared_x,
            };
        }
    };
}

/// Encoded bytes (a point or a coordinate), or why not.
type Bytes = Result<Vec<u8>, AccessError>;

/// The curve operations the generic mapping needs, on encoded points. They are
/// the same on both sides, so the simulated chip ([`crate::sim`]) uses them too.
pub(crate) struct Ops {
    pub mapping_point: fn(&[u8]) -> Bytes,
    pub mapped_generator: fn(&[u8], &[u8], &[u8]) -> Bytes,
    pub ephemeral: fn(&[u8], &[u8]) -> Bytes,
    pub shared_x: fn(&[u8], &[u8]) -> Bytes,
}

/// The operations on `curve`.
pub(crate) fn ops(curve: Curve) -> &'static Ops {
    match curve {
        Curve::P256 => &on_p256::OPS,
        Curve::BrainpoolP256r1 => &on_bp256::OPS,
    }
}

ec_steps!(on_p256, p256::NistP256);
ec_steps!(on_bp256, bp256::BrainpoolP256r1);

/// Sends one GENERAL AUTHENTICATE step (`7C` dynamic authentication data holding
/// `tag`'s object, empty for the first step) and returns the object the chip sends
/// back under `answer`.
fn general_authenticate(
    chip: &mut dyn Chip,
    last: bool,
    object: Option<(u8, &[u8])>,
    answer: u8,
) -> Result<Vec<u8>, AccessError> {
    let mut inner = Vec::new();
    if let Some((tag, value)) = object {
        inner.push(tag);
        push_len(value.len(), &mut inner);
        inner.extend_from_slice(value);
    }
    let mut data = vec![0x7C];
    push_len(inner.len(), &mut data);
    data.extend_from_slice(&inner);
    let cla = if last { 0x00 } else { 0x10 };
    let mut apdu = vec![cla, 0x86, 0x00, 0x00, data.len() as u8];
    apdu.extend_from_slice(&data);
    apdu.push(0x00);
    let reply = chip.transmit(&apdu)?;
    let (body, sw) = split_status(&reply)?;
    if sw != 0x9000 {
        return Err(AccessError::Status(sw));
    }
    let bad = AccessError::Malformed("GENERAL AUTHENTICATE's answer");
    let (tag, content, _) = der(body).map_err(|_| bad.clone())?;
    if tag != 0x7C {
        return Err(bad);
    }
    let (tag, value, _) = der(content).map_err(|_| bad.clone())?;
    if tag != answer {
        return Err(bad);
    }
    Ok(value.to_vec())
}

fn push_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        out.extend_from_slice(&[0x81, n as u8]);
    }
}

/// Runs PACE with the chip under the terminal's keys `keys` (fresh for each run;
/// [`run_pace`] draws them): MSE:Set AT, then the four GENERAL AUTHENTICATE steps.
/// A wrong password shows as a failed token check, never as success.
pub fn run_pace_with(
    chip: &mut dyn Chip,
    key_information: &str,
    info: &PaceInfo,
    keys: &TerminalKeys,
) -> Result<PaceSession, AccessError> {
    let key_len = info.aes_key_len().ok_or(AccessError::Malformed(
        "a PACE protocol other than ECDH generic mapping with AES",
    ))?;
    let curve = info.curve().ok_or(AccessError::Malformed(
        "PACE domain parameters other than 12 (P-256) or 13 (brainpoolP256r1)",
    ))?;
    let param = info.parameter_id.unwrap_or(0) as u8;

    // MSE:Set AT: the protocol, the password (01: the zone), the domain parameters.
    let mut data = vec![0x80, info.oid.len() as u8];
    data.extend_from_slice(&info.oid);
    data.extend_from_slice(&[0x83, 0x01, 0x01, 0x84, 0x01, param]);
    let mut apdu = vec![0x00, 0x22, 0xC1, 0xA4, data.len() as u8];
    apdu.extend_from_slice(&data);
    let reply = chip.transmit(&apdu)?;
    let (_, sw) = split_status(&reply)?;
    if sw != 0x9000 {
        return Err(AccessError::Status(sw));
    }

    // 1: the encrypted nonce, decrypted under the password's key.
    let z = general_authenticate(chip, false, None, 0x80)?;
    let z: [u8; 16] = z
        .as_slice()
        .try_into()
        .map_err(|_| AccessError::Malformed("the encrypted nonce is not one AES block"))?;
    let k_pi = kdf_aes(&password_key(key_information), 3, key_len);
    let nonce = aes_block(&k_pi, &z, false)?;

    let ops = ops(curve);

    // 2: map the nonce to a new generator.
    let ours = (ops.mapping_point)(&keys.mapping)?;
    let chip_mapping = general_authenticate(chip, false, Some((0x81, &ours)), 0x82)?;
    if chip_mapping == ours {
        return Err(AccessError::Authentication(
            "the chip echoed our mapping point",
        ));
    }
    let generator = (ops.mapped_generator)(&nonce, &keys.mapping, &chip_mapping)?;

    // 3: ephemeral key agreement on the mapped generator.
    let our_eph = (ops.ephemeral)(&generator, &keys.agreement)?;
    let chip_eph = general_authenticate(chip, false, Some((0x83, &our_eph)), 0x84)?;
    if chip_eph == our_eph {
        return Err(AccessError::Authentication(
            "the chip echoed our ephemeral point",
        ));
    }
    let shared = (ops.shared_x)(&keys.agreement, &chip_eph)?;
    let ks_enc = kdf_aes(&shared, 1, key_len);
    let ks_mac = kdf_aes(&shared, 2, key_len);

    // 4: mutual authentication, each token a MAC over the other side's point.
    let t_ifd = aes_cmac8(&ks_mac, &token_input(&info.oid, &chip_eph))?;
    // A chip that cannot verify our token answers 63xx: a misread zone, as surely as
    // a wrong token of its own would be.
    let t_ic =
        general_authenticate(chip, true, Some((0x85, &t_ifd)), 0x86).map_err(|e| match e {
            AccessError::Status(sw) if sw & 0xFF00 == 0x6300 => AccessError::Authentication(
                "the chip refused our token: a misread zone, or a chip that is not talking to us",
            ),
            e => e,
        })?;
    let expected = aes_cmac8(&ks_mac, &token_input(&info.oid, &our_eph))?;
    if t_ic.len() != 8 || !bool::from(subtle_eq(&t_ic, &expected)) {
        return Err(AccessError::Authentication(
            "the chip's token does not match: a misread zone, or a chip that is not talking to us",
        ));
    }
    Ok(PaceSession {
        info: info.clone(),
        ks_enc,
        ks_mac,
        chip_ephemeral: chip_eph,
    })
}

/// Equality that takes the same time wherever the bytes differ.
fn subtle_eq(a: &[u8], b: &[u8]) -> elliptic_curve::subtle::Choice {
    use elliptic_curve::subtle::ConstantTimeEq as _;
    a.ct_eq(b)
}

/// [`run_pace_with`] with the terminal's keys drawn from the operating system's generator.
pub fn run_pace(
    chip: &mut dyn Chip,
    key_information: &str,
    info: &PaceInfo,
) -> Result<PaceSession, AccessError> {
    use rand::RngCore;
    // Keys are 32 bytes; one whose value is not below both curves' orders is drawn
    // again by the curve code's range check, so draw with the top bit clear, which
    // both orders exceed.
    let draw = || {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        k[0] &= 0x7F;
        k
    };
    let keys = TerminalKeys {
        mapping: draw(),
        agreement: draw(),
    };
    run_pace_with(chip, key_information, info, &keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_key_derivations_follow_their_definitions() {
        // SHA-1 for AES-128, SHA-256 for the longer keys, cut to the key length.
        let k = kdf_aes(b"secret", 1, 16);
        assert_eq!(k, Sha1::digest(b"secret\0\0\0\x01")[..16]);
        let k = kdf_aes(b"secret", 2, 32);
        assert_eq!(k, Sha256::digest(b"secret\0\0\0\x02")[..]);
        assert_eq!(kdf_aes(b"secret", 3, 24).len(), 24);
    }

    #[test]
    fn card_access_lists_its_pace_infos() {
        let infos =
            parse_card_access(&hex("31143012060a04007f0007020204020202010202010d")).unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].version, 2);
        assert_eq!(infos[0].parameter_id, Some(13));
        assert_eq!(infos[0].aes_key_len(), Some(16));
        for bad in [
            "",
            "31",
            "3105300306",
            "30143012060a04007f0007020204020202010202010d",
        ] {
            assert!(parse_card_access(&hex(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_protocol_or_curve_not_supported_is_refused_before_anything_is_sent() {
        struct Silent;
        impl Chip for Silent {
            fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, AccessError> {
                panic!("nothing may be sent");
            }
        }
        let keys = TerminalKeys {
            mapping: [1; 32],
            agreement: [2; 32],
        };
        let mut info = parse_card_access(&hex("31143012060a04007f0007020204020202010202010d"))
            .unwrap()
            .remove(0);
        info.parameter_id = Some(14);
        assert!(run_pace_with(&mut Silent, "x", &info, &keys).is_err());
        info.parameter_id = Some(13);
        info.oid[8] = 0x04; // integrated mapping
        assert!(run_pace_with(&mut Silent, "x", &info, &keys).is_err());
    }
}
