//! Secure messaging (ICAO 9303 part 11, section 9.8): after BAC with 2-key 3DES
//! and the retail MAC, after PACE with AES-CBC and AES-CMAC. Every command's data
//! is encrypted and every command and response MACed under the session keys, with
//! a send sequence counter (SSC) that both sides advance once per message, so a
//! replayed or reordered APDU fails its MAC.
//!
//! Both sides are here: the terminal's ([`SecureChannel::protect`] and
//! [`SecureChannel::unprotect`]) and the chip's ([`SecureChannel::open_command`] and
//! [`SecureChannel::seal_response`]), which the simulated chip
//! ([`crate::sim`]) uses. The block ciphers are the RustCrypto crates'; the
//! modes are written out because 9303 fixes details (a zero IV for 3DES, an IV
//! of `E(KSenc, SSC)` for AES, the MAC over a padded input truncated to eight
//! bytes) that the generic mode crates do not express.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use cmac::{Cmac, Mac};
use des::{Des, TdesEde2};

use crate::bac::{split_status, AccessError, KeyPair};

/// The cipher suite of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cipher {
    /// 2-key 3DES in CBC mode and the ISO/IEC 9797-1 MAC algorithm 3 (after BAC).
    Tdes,
    /// AES in CBC mode and AES-CMAC (after PACE), 128, 192 or 256-bit keys.
    Aes,
}

/// An AES key of any of its three lengths.
enum AesKey {
    A128(aes::Aes128),
    A192(aes::Aes192),
    A256(aes::Aes256),
}

impl AesKey {
    fn new(key: &[u8]) -> Result<Self, AccessError> {
        let bad = |_| AccessError::Malformed("an AES key of the wrong length");
        Ok(match key.len() {
            16 => Self::A128(aes::Aes128::new_from_slice(key).map_err(bad)?),
            24 => Self::A192(aes::Aes192::new_from_slice(key).map_err(bad)?),
            32 => Self::A256(aes::Aes256::new_from_slice(key).map_err(bad)?),
            _ => return Err(AccessError::Malformed("an AES key of the wrong length")),
        })
    }

    fn encrypt(&self, b: &mut [u8; 16]) {
        let b = aes::Block::from_mut_slice(b);
        match self {
            Self::A128(c) => c.encrypt_block(b),
            Self::A192(c) => c.encrypt_block(b),
            Self::A256(c) => c.encrypt_block(b),
        }
    }

    fn decrypt(&self, b: &mut [u8; 16]) {
        let b = aes::Block::from_mut_slice(b);
        match self {
            Self::A128(c) => c.decrypt_block(b),
            Self::A192(c) => c.decrypt_block(b),
            Self::A256(c) => c.decrypt_block(b),
        }
    }
}

/// One AES block encrypted (`encrypt`) or decrypted under `key`.
pub(crate) fn aes_block(
    key: &[u8],
    block: &[u8; 16],
    encrypt: bool,
) -> Result<[u8; 16], AccessError> {
    let k = AesKey::new(key)?;
    let mut b = *block;
    if encrypt {
        k.encrypt(&mut b);
    } else {
        k.decrypt(&mut b);
    }
    Ok(b)
}

/// AES-CMAC of `data` under `key`, cut to 8 bytes (PACE's tokens and secure
/// messaging's MACs).
pub(crate) fn aes_cmac8(key: &[u8], data: &[u8]) -> Result<[u8; 8], AccessError> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Result<Vec<u8>, AccessError> {
        let mut m = <M as Mac>::new_from_slice(key)
            .map_err(|_| AccessError::Malformed("an AES key of the wrong length"))?;
        m.update(data);
        Ok(m.finalize().into_bytes().to_vec())
    }
    let full = match key.len() {
        16 => run::<Cmac<aes::Aes128>>(key, data)?,
        24 => run::<Cmac<aes::Aes192>>(key, data)?,
        32 => run::<Cmac<aes::Aes256>>(key, data)?,
        _ => return Err(AccessError::Malformed("an AES key of the wrong length")),
    };
    let mut t = [0u8; 8];
    t.copy_from_slice(&full[..8]);
    Ok(t)
}

/// 3DES-CBC with a zero IV; `data` is a whole number of blocks.
pub(crate) fn tdes_cbc(key: &[u8; 16], data: &[u8], encrypt: bool) -> Vec<u8> {
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
        } else {
            let cipher = b;
            c.decrypt_block((&mut b).into());
            for i in 0..8 {
                b[i] ^= prev[i];
            }
            prev = cipher;
        }
        out.extend_from_slice(&b);
    }
    out
}

/// AES-CBC from `iv`; `data` is a whole number of blocks.
fn aes_cbc(key: &AesKey, iv: [u8; 16], data: &[u8], encrypt: bool) -> Vec<u8> {
    let mut prev = iv;
    let mut out = Vec::with_capacity(data.len());
    for block in data.chunks_exact(16) {
        let mut b = [0u8; 16];
        b.copy_from_slice(block);
        if encrypt {
            for i in 0..16 {
                b[i] ^= prev[i];
            }
            key.encrypt(&mut b);
            prev = b;
        } else {
            let cipher = b;
            key.decrypt(&mut b);
            for i in 0..16 {
                b[i] ^= prev[i];
            }
            prev = cipher;
        }
        out.extend_from_slice(&b);
    }
    out
}

/// ISO/IEC 9797-1 padding method 2: `80`, then zeros to a whole block.
pub(crate) fn pad(data: &[u8], block: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    v.push(0x80);
    while !v.len().is_multiple_of(block) {
        v.push(0);
    }
    v
}

pub(crate) fn unpad(data: &[u8]) -> Result<&[u8], AccessError> {
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
pub(crate) fn retail_mac(key: &[u8; 16], padded: &[u8]) -> [u8; 8] {
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

/// Equality that takes the same time wherever the bytes differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// BER length of a short, one-byte or two-byte value (APDU data objects stay under 64 KiB).
pub(crate) fn ber_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
}

/// The session keys of either suite.
enum Keys {
    Tdes(KeyPair),
    Aes {
        // Boxed: the key schedules dwarf the 3DES pair.
        enc: Box<AesKey>,
        enc_bytes: Vec<u8>,
        mac: Vec<u8>,
    },
}

/// A command as the chip receives it once secure messaging is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// CLA (without the secure-messaging bits), INS, P1, P2.
    pub header: [u8; 4],
    /// The command's data, decrypted.
    pub data: Vec<u8>,
    /// The expected length (256 for `00`), when the command asked for data.
    pub le: Option<usize>,
}

/// Secure messaging under a session's keys, with its send sequence counter.
pub struct SecureChannel {
    keys: Keys,
    ssc: u128,
}

impl std::fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach a log.
        write!(f, "SecureChannel({:?}, ..)", self.cipher())
    }
}

/// Longest command data a short protected APDU carries (224 bytes once padded).
pub const MAX_COMMAND_DATA: usize = 223;

impl SecureChannel {
    /// A 3DES session (after BAC) from its keys and initial counter.
    pub fn tdes(keys: KeyPair, ssc: u64) -> Self {
        Self {
            keys: Keys::Tdes(keys),
            ssc: u128::from(ssc),
        }
    }

    /// An AES session (after PACE): the counter starts at zero.
    pub fn aes(ks_enc: &[u8], ks_mac: &[u8]) -> Result<Self, AccessError> {
        // The MAC key is checked now rather than at the first message.
        AesKey::new(ks_mac)?;
        Ok(Self {
            keys: Keys::Aes {
                enc: Box::new(AesKey::new(ks_enc)?),
                enc_bytes: ks_enc.to_vec(),
                mac: ks_mac.to_vec(),
            },
            ssc: 0,
        })
    }

    /// The session's cipher suite.
    pub fn cipher(&self) -> Cipher {
        match self.keys {
            Keys::Tdes(_) => Cipher::Tdes,
            Keys::Aes { .. } => Cipher::Aes,
        }
    }

    /// The encryption key (for tests against worked examples).
    pub fn enc_key(&self) -> &[u8] {
        match &self.keys {
            Keys::Tdes(k) => &k.enc,
            Keys::Aes { enc_bytes, .. } => enc_bytes,
        }
    }

    /// The MAC key (for tests against worked examples).
    pub fn mac_key(&self) -> &[u8] {
        match &self.keys {
            Keys::Tdes(k) => &k.mac,
            Keys::Aes { mac, .. } => mac,
        }
    }

    /// The send sequence counter, big-endian at its width (8 bytes for 3DES, 16 for AES).
    pub fn ssc(&self) -> Vec<u8> {
        let b = self.ssc.to_be_bytes();
        b[16 - self.block()..].to_vec()
    }

    fn block(&self) -> usize {
        match self.keys {
            Keys::Tdes(_) => 8,
            Keys::Aes { .. } => 16,
        }
    }

    /// Pads and encrypts under the current counter.
    fn encrypt(&self, data: &[u8]) -> Vec<u8> {
        let p = pad(data, self.block());
        match &self.keys {
            Keys::Tdes(k) => tdes_cbc(&k.enc, &p, true),
            Keys::Aes { enc, .. } => aes_cbc(enc, self.aes_iv(enc), &p, true),
        }
    }

    /// Decrypts under the current counter and removes the padding.
    fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, AccessError> {
        if data.is_empty() || !data.len().is_multiple_of(self.block()) {
            return Err(AccessError::Malformed(
                "encrypted data is not a whole number of blocks",
            ));
        }
        let plain = match &self.keys {
            Keys::Tdes(k) => tdes_cbc(&k.enc, data, false),
            Keys::Aes { enc, .. } => aes_cbc(enc, self.aes_iv(enc), data, false),
        };
        Ok(unpad(&plain)?.to_vec())
    }

    /// AES's IV: the counter encrypted under the encryption key.
    fn aes_iv(&self, enc: &AesKey) -> [u8; 16] {
        let mut iv = self.ssc.to_be_bytes();
        enc.encrypt(&mut iv);
        iv
    }

    /// The MAC over the counter and `message`, padded to the block.
    fn mac(&self, message: &[u8]) -> Result<[u8; 8], AccessError> {
        let mut input = self.ssc();
        input.extend_from_slice(message);
        let input = pad(&input, self.block());
        match &self.keys {
            Keys::Tdes(k) => Ok(retail_mac(&k.mac, &input)),
            Keys::Aes { mac, .. } => aes_cmac8(mac, &input),
        }
    }

    /// The encrypted-data object for `data` under the current counter: `DO'85'` for an
    /// odd instruction (its data are objects, so no padding indicator), else `DO'87'`
    /// with the indicator `01`; nothing when there are no data.
    fn data_object(&self, data: &[u8], odd: bool) -> Vec<u8> {
        let mut out = vec![];
        if data.is_empty() {
            return out;
        }
        let enc = self.encrypt(data);
        if odd {
            out.push(0x85);
            ber_len(enc.len(), &mut out);
        } else {
            out.push(0x87);
            ber_len(enc.len() + 1, &mut out);
            out.push(0x01);
        }
        out.extend_from_slice(&enc);
        out
    }

    /// The data inside a received encrypted-data object (tag and value), decrypted.
    fn open_data_object(&self, object: Option<(u32, &[u8])>) -> Result<Vec<u8>, AccessError> {
        match object {
            Some((0x87, [0x01, rest @ ..])) | Some((0x85, rest)) => self.decrypt(rest),
            Some(_) => Err(AccessError::Malformed("encrypted data object")),
            None => Ok(vec![]),
        }
    }

    /// Protects a command: `DO'87'` holds the encrypted data (`DO'85'` for an odd
    /// instruction, whose data are objects themselves), `DO'97'` the expected
    /// length, `DO'8E'` the MAC; the class byte gains `0C`. Short APDUs only (data
    /// up to [`MAX_COMMAND_DATA`] bytes, `le` up to 256).
    pub fn protect(
        &mut self,
        header: [u8; 4],
        data: &[u8],
        le: Option<usize>,
    ) -> Result<Vec<u8>, AccessError> {
        if data.len() > MAX_COMMAND_DATA || le.is_some_and(|l| l == 0 || l > 256) {
            return Err(AccessError::Malformed("command too long for a short APDU"));
        }
        self.ssc = self.ssc.wrapping_add(1);
        let h = [header[0] | 0x0C, header[1], header[2], header[3]];
        let mut body = self.data_object(data, header[1] & 1 == 1);
        if let Some(le) = le {
            body.extend_from_slice(&[0x97, 0x01, (le & 0xFF) as u8]);
        }
        let mut message = pad(&h, self.block());
        message.extend_from_slice(&body);
        let mac = self.mac(&message)?;
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
                0x85 | 0x87 | 0x99 => {
                    // Re-encode what the MAC covers, as received.
                    covered.push(o.tag as u8);
                    ber_len(o.value.len(), &mut covered);
                    covered.extend_from_slice(o.value);
                    if o.tag == 0x99 {
                        status = Some(o.value);
                    } else if enc.is_some() {
                        return Err(AccessError::Malformed("two encrypted data objects"));
                    } else {
                        enc = Some((o.tag, o.value));
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
        if !ct_eq(&self.mac(&covered)?, mac) {
            return Err(AccessError::Authentication(
                "the response's MAC does not verify",
            ));
        }
        let sw = match status {
            Some([a, b]) => u16::from_be_bytes([*a, *b]),
            _ => return Err(AccessError::Malformed("response without a status object")),
        };
        Ok((self.open_data_object(enc)?, sw))
    }

    /// The chip's side: checks a protected command's MAC and decrypts its data.
    /// A command without secure messaging, or whose MAC does not verify, is refused
    /// (a chip then answers `6987` or `6988` and closes the session).
    pub fn open_command(&mut self, apdu: &[u8]) -> Result<Command, AccessError> {
        self.ssc = self.ssc.wrapping_add(1);
        let bad = |why| AccessError::Malformed(why);
        let (h, rest) = apdu
            .split_first_chunk::<4>()
            .ok_or(bad("command shorter than its header"))?;
        if h[0] & 0x0C != 0x0C {
            return Err(AccessError::Authentication(
                "a command without secure messaging",
            ));
        }
        let (lc, rest) = rest
            .split_first()
            .ok_or(bad("protected command without data"))?;
        let lc = usize::from(*lc);
        let body = rest.get(..lc).ok_or(bad("command shorter than its Lc"))?;
        if rest.len() > lc + 1 {
            return Err(bad("bytes after Le"));
        }
        let objects = crate::tlv::read_all(body).map_err(|_| bad("command objects"))?;
        let (mut enc, mut le, mut mac) = (None, None, None);
        let mut covered = pad(h, self.block());
        for o in &objects {
            match o.tag {
                0x85 | 0x87 | 0x97 => {
                    covered.push(o.tag as u8);
                    ber_len(o.value.len(), &mut covered);
                    covered.extend_from_slice(o.value);
                    match (o.tag, o.value) {
                        (0x97, [n]) => le = Some(if *n == 0 { 256 } else { usize::from(*n) }),
                        (0x97, _) => return Err(bad("expected-length object")),
                        _ => enc = Some((o.tag, o.value)),
                    }
                }
                0x8E => mac = Some(o.value),
                _ => return Err(bad("unexpected object in a protected command")),
            }
        }
        let mac = mac.ok_or(AccessError::Authentication("command without a MAC"))?;
        if !ct_eq(&self.mac(&covered)?, mac) {
            return Err(AccessError::Authentication(
                "the command's MAC does not verify",
            ));
        }
        Ok(Command {
            header: [h[0] & !0x0C, h[1], h[2], h[3]],
            data: self.open_data_object(enc)?,
            le,
        })
    }

    /// The chip's side: a protected response carrying `data` (encrypted in
    /// `DO'85'` when `odd`, the answer to an odd instruction, else `DO'87'`) and
    /// the status word.
    pub fn seal_response(
        &mut self,
        data: &[u8],
        sw: u16,
        odd: bool,
    ) -> Result<Vec<u8>, AccessError> {
        self.ssc = self.ssc.wrapping_add(1);
        let mut body = self.data_object(data, odd);
        body.extend_from_slice(&[0x99, 0x02]);
        body.extend_from_slice(&sw.to_be_bytes());
        let mac = self.mac(&body)?;
        body.extend_from_slice(&[0x8E, 0x08]);
        body.extend_from_slice(&mac);
        body.extend_from_slice(&sw.to_be_bytes());
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_round_trips_and_bad_padding_is_refused() {
        for block in [8, 16] {
            for n in 0..33 {
                let d: Vec<u8> = (1..=n as u8).collect();
                let p = pad(&d, block);
                assert_eq!(p.len() % block, 0);
                assert!(p.len() > d.len());
                assert_eq!(unpad(&p).unwrap(), &d[..]);
            }
        }
        assert!(unpad(&[1, 2, 3, 0, 0, 0, 0, 0]).is_err());
        assert!(unpad(&[0; 8]).is_err());
    }

    /// The AES construction spelt out from its definition (9303 part 11, 9.8.6.2
    /// and 9.8.6.3) with the block cipher and CMAC alone, independently of the
    /// channel's code: the IV is the counter encrypted, the MAC an 8-byte CMAC over
    /// the counter, the padded header and the objects, padded again.
    #[test]
    fn an_aes_protected_command_is_built_as_9303_defines_it() {
        let (ks_enc, ks_mac) = ([0x11u8; 16], [0x22u8; 16]);
        let mut ch = SecureChannel::aes(&ks_enc, &ks_mac).unwrap();
        let apdu = ch.protect([0x00, 0xB0, 0x00, 0x00], &[], Some(4)).unwrap();
        // SSC 1, no data: 97 01 04, then the MAC.
        let mut ssc = [0u8; 16];
        ssc[15] = 1;
        let mut input = ssc.to_vec();
        input.extend_from_slice(&[0x0C, 0xB0, 0x00, 0x00, 0x80]);
        input.extend_from_slice(&[0; 11]);
        input.extend_from_slice(&[0x97, 0x01, 0x04, 0x80]);
        input.extend_from_slice(&[0; 12]);
        let mut m = <Cmac<aes::Aes128> as Mac>::new_from_slice(&ks_mac).unwrap();
        m.update(&input);
        let mac = m.finalize().into_bytes();
        let mut want = vec![0x0C, 0xB0, 0x00, 0x00, 13, 0x97, 0x01, 0x04, 0x8E, 0x08];
        want.extend_from_slice(&mac[..8]);
        want.push(0x00);
        assert_eq!(apdu, want);

        // SSC 2: data encrypted under IV = E(KSenc, SSC).
        let apdu = ch
            .protect([0x00, 0xA4, 0x02, 0x0C], &[0x01, 0x1E], None)
            .unwrap();
        ssc[15] = 2;
        let c = aes::Aes128::new_from_slice(&ks_enc).unwrap();
        let mut iv = aes::Block::clone_from_slice(&ssc);
        c.encrypt_block(&mut iv);
        let mut block = [0u8; 16];
        block[..3].copy_from_slice(&[0x01, 0x1E, 0x80]);
        for i in 0..16 {
            block[i] ^= iv[i];
        }
        let mut b = aes::Block::clone_from_slice(&block);
        c.encrypt_block(&mut b);
        assert_eq!(&apdu[5..8], &[0x87, 0x11, 0x01]);
        assert_eq!(&apdu[8..24], b.as_slice());
        assert_eq!(ch.ssc(), ssc.to_vec());
    }

    #[test]
    fn both_suites_round_trip_between_terminal_and_chip() {
        let keys = KeyPair::from_seed(b"0123456789abcdef");
        for (mut terminal, mut chip) in [
            (
                SecureChannel::tdes(keys.clone(), 0x0102_0304_0506_0708),
                SecureChannel::tdes(keys.clone(), 0x0102_0304_0506_0708),
            ),
            (
                SecureChannel::aes(&[7; 16], &[9; 16]).unwrap(),
                SecureChannel::aes(&[7; 16], &[9; 16]).unwrap(),
            ),
            (
                SecureChannel::aes(&[7; 32], &[9; 32]).unwrap(),
                SecureChannel::aes(&[7; 32], &[9; 32]).unwrap(),
            ),
        ] {
            for (ins, data, le) in [
                (0xA4u8, vec![0x01, 0x1E], None),
                (0xB0, vec![], Some(256)),
                (0xB1, vec![0x54, 0x02, 0x80, 0x00], Some(0xDF)),
                (0xB0, (0..223).map(|i| i as u8).collect(), Some(1)),
            ] {
                let apdu = terminal
                    .protect([0x00, ins, 0x00, 0x00], &data, le)
                    .unwrap();
                let cmd = chip.open_command(&apdu).unwrap();
                assert_eq!(cmd.header, [0x00, ins, 0x00, 0x00]);
                assert_eq!((cmd.data, cmd.le), (data.clone(), le));
                let answer: Vec<u8> = (0..le.unwrap_or(0)).map(|i| (i * 7) as u8).collect();
                let sealed = chip.seal_response(&answer, 0x9000, ins & 1 == 1).unwrap();
                assert_eq!(terminal.unprotect(&sealed).unwrap(), (answer, 0x9000));
            }
            // A replayed command carries an old counter: its MAC fails.
            let apdu = terminal.protect([0x00, 0xB0, 0, 0], &[], Some(8)).unwrap();
            chip.open_command(&apdu).unwrap();
            assert!(matches!(
                chip.open_command(&apdu),
                Err(AccessError::Authentication(_))
            ));
            // A changed byte anywhere in a response is refused.
            let mut t2 = SecureChannel::aes(&[1; 16], &[2; 16]).unwrap();
            let mut c2 = SecureChannel::aes(&[1; 16], &[2; 16]).unwrap();
            t2.protect([0, 0xB0, 0, 0], &[], Some(4)).unwrap();
            let sealed = {
                c2.ssc = 1;
                c2.seal_response(&[1, 2, 3, 4], 0x9000, false).unwrap()
            };
            for i in 0..sealed.len() - 2 {
                let mut t3 = SecureChannel::aes(&[1; 16], &[2; 16]).unwrap();
                t3.ssc = 1;
                let mut s = sealed.clone();
                s[i] ^= 0x40;
                assert!(t3.unprotect(&s).is_err(), "byte {i}");
            }
            // Commands without secure messaging are refused by the chip.
            assert!(chip.open_command(&[0x00, 0xB0, 0, 0, 4]).is_err());
        }
    }

    #[test]
    fn nothing_panics_on_made_up_protected_apdus() {
        let mut chip = SecureChannel::aes(&[7; 16], &[9; 16]).unwrap();
        let mut terminal = SecureChannel::tdes(KeyPair::from_seed(b"k"), 0);
        let mut x = 0x1234_5678u32;
        for _ in 0..20_000 {
            let n = (x % 40) as usize;
            let v: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = chip.open_command(&v);
            let _ = terminal.unprotect(&v);
        }
    }
}
