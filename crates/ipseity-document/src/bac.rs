//! Basic Access Control and its secure messaging (ICAO 9303 part 11, sections
//! 4.3 and 9.8, with 3DES): keys derived from the machine-readable zone's key
//! information, mutual authentication with the chip, and the protection of
//! every command and response after it. The chip is reached through [`Chip`],
//! so a PC/SC reader, an NFC phone bridge or a simulated chip can stand behind it.
//!
//! BAC is what older chips offer; PACE replaces it on newer ones. Neither
//! proves a chip genuine (passive authentication does); BAC only keeps a
//! skimmer from reading a closed passport.

use sha1::{Digest, Sha1};

pub use crate::sm::SecureChannel;
use crate::sm::{ct_eq, pad, retail_mac, tdes_cbc};

/// Why an access protocol failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The chip answered with an error status word.
    #[error("the chip answered {0:04X}")]
    Status(u16),
    /// The chip's answer is not what the protocol expects (length, format).
    #[error("malformed answer from the chip: {0}")]
    Malformed(&'static str),
    /// A MAC or a returned nonce did not match: wrong keys (a misread zone)
    /// or a chip that is not talking to us.
    #[error("authentication failed: {0}")]
    Authentication(&'static str),
    /// The reader could not reach the chip.
    #[error("transport: {0}")]
    Transport(String),
}

impl ipseity_core::Classified for AccessError {
    fn kind(&self) -> ipseity_core::ErrorKind {
        ipseity_core::ErrorKind::Input
    }

    fn code(&self) -> &'static str {
        "chip_access_failed"
    }
}

/// A chip behind a reader: one command APDU in, one response APDU (data and
/// status word) out.
pub trait Chip {
    /// Sends `apdu` and returns the chip's response.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, AccessError>;
}

/// Sets each byte's lowest bit so that the byte has odd parity (DES keys).
fn adjust_parity(key: &mut [u8]) {
    for b in key {
        let ones = (*b & 0xFE).count_ones();
        *b = (*b & 0xFE) | u8::from(ones % 2 == 0);
    }
}

/// 9303 part 11's key derivation for 3DES: SHA-1 of the seed and a 32-bit
/// counter (1 encryption, 2 MAC), first 16 bytes, DES parity set.
pub fn kdf_3des(seed: &[u8], counter: u32) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(seed);
    h.update(counter.to_be_bytes());
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    adjust_parity(&mut k);
    k
}

/// The BAC key seed: the first 16 bytes of SHA-1 of the key information
/// ([`crate::Mrz::key_information`]).
pub fn key_seed(key_information: &str) -> [u8; 16] {
    let d = Sha1::digest(key_information.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// An encryption and a MAC key (2-key 3DES).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Encryption key.
    pub enc: [u8; 16],
    /// MAC key.
    pub mac: [u8; 16],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach a log.
        f.write_str("KeyPair(..)")
    }
}

impl KeyPair {
    /// The pair derived from a seed.
    pub fn from_seed(seed: &[u8]) -> Self {
        Self {
            enc: kdf_3des(seed, 1),
            mac: kdf_3des(seed, 2),
        }
    }
}

/// EXTERNAL AUTHENTICATE's data: `E.IFD || M.IFD`, from the chip's challenge
/// and our own nonce and key material.
pub fn authenticate_data(
    keys: &KeyPair,
    rnd_ic: &[u8; 8],
    rnd_ifd: &[u8; 8],
    k_ifd: &[u8; 16],
) -> Vec<u8> {
    let mut s = Vec::with_capacity(32);
    s.extend_from_slice(rnd_ifd);
    s.extend_from_slice(rnd_ic);
    s.extend_from_slice(k_ifd);
    let e = tdes_cbc(&keys.enc, &s, true);
    let m = retail_mac(&keys.mac, &pad(&e, 8));
    [e, m.to_vec()].concat()
}

/// Checks the chip's answer to EXTERNAL AUTHENTICATE (`E.IC || M.IC`, 40
/// bytes) and opens the secure channel with the session keys.
pub fn open_session(
    keys: &KeyPair,
    rnd_ic: &[u8; 8],
    rnd_ifd: &[u8; 8],
    k_ifd: &[u8; 16],
    answer: &[u8],
) -> Result<SecureChannel, AccessError> {
    if answer.len() != 40 {
        return Err(AccessError::Malformed(
            "EXTERNAL AUTHENTICATE answer is not 40 bytes",
        ));
    }
    let (e, m) = answer.split_at(32);
    if !ct_eq(&retail_mac(&keys.mac, &pad(e, 8)), m) {
        return Err(AccessError::Authentication(
            "the chip's MAC does not verify",
        ));
    }
    let r = tdes_cbc(&keys.enc, e, false);
    if !ct_eq(&r[..8], rnd_ic) || !ct_eq(&r[8..16], rnd_ifd) {
        return Err(AccessError::Authentication(
            "the chip did not return our nonces",
        ));
    }
    let mut seed = [0u8; 16];
    for i in 0..16 {
        seed[i] = k_ifd[i] ^ r[16 + i];
    }
    let mut ssc = [0u8; 8];
    ssc[..4].copy_from_slice(&rnd_ic[4..]);
    ssc[4..].copy_from_slice(&rnd_ifd[4..]);
    Ok(SecureChannel::tdes(
        KeyPair::from_seed(&seed),
        u64::from_be_bytes(ssc),
    ))
}

/// Runs BAC with a chip: GET CHALLENGE, EXTERNAL AUTHENTICATE, session keys.
/// `rnd_ifd` and `k_ifd` must be fresh random bytes ([`run_bac`] draws them).
pub fn run_bac_with(
    chip: &mut dyn Chip,
    key_information: &str,
    rnd_ifd: &[u8; 8],
    k_ifd: &[u8; 16],
) -> Result<SecureChannel, AccessError> {
    let keys = KeyPair::from_seed(&key_seed(key_information));
    let reply = chip.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08])?;
    let (challenge, sw) = split_status(&reply)?;
    if sw != 0x9000 {
        return Err(AccessError::Status(sw));
    }
    let rnd_ic: [u8; 8] = challenge
        .try_into()
        .map_err(|_| AccessError::Malformed("GET CHALLENGE did not return 8 bytes"))?;
    let data = authenticate_data(&keys, &rnd_ic, rnd_ifd, k_ifd);
    let mut apdu = vec![0x00, 0x82, 0x00, 0x00, data.len() as u8];
    apdu.extend_from_slice(&data);
    apdu.push(0x28);
    let reply = chip.transmit(&apdu)?;
    let (answer, sw) = split_status(&reply)?;
    if sw != 0x9000 {
        return Err(AccessError::Status(sw));
    }
    open_session(&keys, &rnd_ic, rnd_ifd, k_ifd, answer)
}

/// [`run_bac_with`] with `RND.IFD` and `K.IFD` from the operating system's generator.
pub fn run_bac(chip: &mut dyn Chip, key_information: &str) -> Result<SecureChannel, AccessError> {
    use rand::RngCore;
    let (mut rnd_ifd, mut k_ifd) = ([0u8; 8], [0u8; 16]);
    rand::rngs::OsRng.fill_bytes(&mut rnd_ifd);
    rand::rngs::OsRng.fill_bytes(&mut k_ifd);
    run_bac_with(chip, key_information, &rnd_ifd, &k_ifd)
}

/// A response APDU split into its data and its status word.
pub(crate) fn split_status(r: &[u8]) -> Result<(&[u8], u16), AccessError> {
    if r.len() < 2 {
        return Err(AccessError::Malformed(
            "response shorter than a status word",
        ));
    }
    let (d, sw) = r.split_at(r.len() - 2);
    Ok((d, u16::from_be_bytes([sw[0], sw[1]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_is_odd() {
        let mut k = [0x00, 0x01, 0xFE, 0xFF];
        adjust_parity(&mut k);
        assert_eq!(k, [0x01, 0x01, 0xFE, 0xFE]);
    }
}
