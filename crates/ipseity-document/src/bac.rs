//! Basic Access Control and its secure messaging (ICAO 9303 part 11, sections
//! 4.3 and 9.8, with 3DES): keys derived from the machine-readable zone's key
//! information, mutual authentication with the chip, and the protection of
//! every command and response after it. The chip is reached through [`Chip`],
//! so a PC/SC reader, an NFC phone bridge or a simulated chip can stand behind it.
//!
//! BAC is what older chips offer; PACE replaces it on newer ones. Neither
//! proves a chip genuine (passive authentication does); BAC only keeps a
//! skimmer from reading a closed passport.

use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::{Des, TdesEde2};
use sha1::{Digest, Sha1};

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

/// 3DES-CBC with a zero IV; `data` is a whole number of blocks. (Written out
/// here because the retail MAC below needs the same block loop.)
fn tdes_cbc(key: &[u8; 16], data: &[u8], encrypt: bool) -> Vec<u8> {
    let c = TdesEde2::new(key.into());
    let mut prev = [0u8; 8];
    let mut out = Vec::with_capacity(data.len());
    for block in data.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(block);
        if encrypt {
            for i in 0..8 {
                b[i] ^= prev[i];
            }
            c.encrypt_block((&mut b).into());
            prev = b;
            out.extend_from_slice(&b);
        } else {
            let cipher = b;
            c.decrypt_block((&mut b).into());
            for i in 0..8 {
                b[i] ^= prev[i];
            }
            prev = cipher;
            out.extend_from_slice(&b);
        }
    }
    out
}

/// ISO/IEC 9797-1 padding method 2: `80`, then zeros to a whole block.
fn pad(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.push(0x80);
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
    v
}

fn unpad(data: &[u8]) -> Result<&[u8], AccessError> {
    let end = data
        .iter()
        .rposition(|&b| b != 0)
        .filter(|&i| data[i] == 0x80)
        .ok_or(AccessError::Malformed("bad padding"))?;
    Ok(&data[..end])
}

/// ISO/IEC 9797-1 MAC algorithm 3 (the "retail MAC") over already padded
/// data: single-DES CBC under the first key half, then decrypt with the
/// second half and encrypt with the first.
fn retail_mac(key: &[u8; 16], padded: &[u8]) -> [u8; 8] {
    let (k1, k2) = (Des::new(key[..8].into()), Des::new(key[8..].into()));
    let mut y = [0u8; 8];
    for block in padded.chunks_exact(8) {
        for i in 0..8 {
            y[i] ^= block[i];
        }
        k1.encrypt_block((&mut y).into());
    }
    k2.decrypt_block((&mut y).into());
    k1.encrypt_block((&mut y).into());
    y
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    let m = retail_mac(&keys.mac, &pad(&e));
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
    if !ct_eq(&retail_mac(&keys.mac, &pad(e)), m) {
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
    Ok(SecureChannel {
        keys: KeyPair::from_seed(&seed),
        ssc: u64::from_be_bytes(ssc),
    })
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

/// Secure messaging after BAC: every command encrypted and MACed under the
/// session keys, with a send sequence counter that both sides advance.
pub struct SecureChannel {
    keys: KeyPair,
    ssc: u64,
}

impl std::fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecureChannel(..)")
    }
}

/// BER length of a short or two-byte value (APDU data objects stay under 64 KiB).
fn ber_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
}

impl SecureChannel {
    /// The session keys (for tests against worked examples).
    pub fn keys(&self) -> &KeyPair {
        &self.keys
    }

    /// The send sequence counter.
    pub fn ssc(&self) -> u64 {
        self.ssc
    }

    /// Protects a command: `DO'87'` holds the encrypted data, `DO'97'` the
    /// expected length, `DO'8E'` the MAC; the class byte gains `0C`. Short
    /// APDUs only (data under 224 bytes, `le` up to 256).
    pub fn protect(
        &mut self,
        header: [u8; 4],
        data: &[u8],
        le: Option<usize>,
    ) -> Result<Vec<u8>, AccessError> {
        if data.len() > 223 || le.is_some_and(|l| l > 256) {
            return Err(AccessError::Malformed("command too long for a short APDU"));
        }
        self.ssc = self.ssc.wrapping_add(1);
        let h = [header[0] | 0x0C, header[1], header[2], header[3]];
        let mut body = vec![];
        if !data.is_empty() {
            let enc = tdes_cbc(&self.keys.enc, &pad(data), true);
            body.push(0x87);
            ber_len(enc.len() + 1, &mut body);
            body.push(0x01);
            body.extend_from_slice(&enc);
        }
        if let Some(le) = le {
            body.extend_from_slice(&[0x97, 0x01, (le & 0xFF) as u8]);
        }
        let mut mac_input = self.ssc.to_be_bytes().to_vec();
        mac_input.extend_from_slice(&pad(&h));
        mac_input.extend_from_slice(&body);
        let mac = retail_mac(&self.keys.mac, &pad(&mac_input));
        body.extend_from_slice(&[0x8E, 0x08]);
        body.extend_from_slice(&mac);
        let mut apdu = h.to_vec();
        apdu.push(body.len() as u8);
        apdu.extend_from_slice(&body);
        apdu.push(0x00);
        Ok(apdu)
    }

    /// Checks and opens a protected response: returns its data and the status
    /// word inside it. A response whose MAC does not verify is refused.
    pub fn unprotect(&mut self, response: &[u8]) -> Result<(Vec<u8>, u16), AccessError> {
        self.ssc = self.ssc.wrapping_add(1);
        let (body, sw) = split_status(response)?;
        if sw != 0x9000 && body.is_empty() {
            return Err(AccessError::Status(sw));
        }
        let objects =
            crate::tlv::read_all(body).map_err(|_| AccessError::Malformed("response objects"))?;
        let (mut enc, mut status, mut mac) = (None, None, None);
        let mut covered = vec![];
        for o in &objects {
            match o.tag {
                0x87 | 0x99 => {
                    // Re-encode what the MAC covers, as received.
                    covered.push(o.tag as u8);
                    ber_len(o.value.len(), &mut covered);
                    covered.extend_from_slice(o.value);
                    if o.tag == 0x87 {
                        enc = Some(o.value);
                    } else {
                        status = Some(o.value);
                    }
                }
                0x8E => mac = Some(o.value),
                _ => {
                    return Err(AccessError::Malformed(
                        "unexpected object in a protected response",
                    ))
                }
            }
        }
        let mac = mac.ok_or(AccessError::Authentication("response without a MAC"))?;
        let mut mac_input = self.ssc.to_be_bytes().to_vec();
        mac_input.extend_from_slice(&covered);
        if !ct_eq(&retail_mac(&self.keys.mac, &pad(&mac_input)), mac) {
            return Err(AccessError::Authentication(
                "the response's MAC does not verify",
            ));
        }
        let sw = match status {
            Some([a, b]) => u16::from_be_bytes([*a, *b]),
            _ => return Err(AccessError::Malformed("response without a status object")),
        };
        let data = match enc {
            Some([0x01, rest @ ..]) if !rest.is_empty() && rest.len().is_multiple_of(8) => {
                unpad(&tdes_cbc(&self.keys.enc, rest, false))?.to_vec()
            }
            Some(_) => return Err(AccessError::Malformed("encrypted data object")),
            None => vec![],
        };
        Ok((data, sw))
    }
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

    #[test]
    fn padding_round_trips_and_bad_padding_is_refused() {
        for n in 0..17 {
            let d: Vec<u8> = (1..=n as u8).collect();
            let p = pad(&d);
            assert_eq!(p.len() % 8, 0);
            assert_eq!(unpad(&p).unwrap(), &d[..]);
        }
        assert!(unpad(&[1, 2, 3, 0, 0, 0, 0, 0]).is_err());
        assert!(unpad(&[0; 8]).is_err());
    }
}
