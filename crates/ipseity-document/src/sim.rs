//! A simulated eMRTD chip: it answers APDUs from a document's files as a real
//! chip does, so that the terminal's side (access protocols, secure messaging, the
//! file reader in [`crate::reader`], a PC/SC transport) is tested end to end
//! without a passport. It offers BAC, PACE (generic mapping over ECDH, AES) or
//! both; refuses the LDS files until one has run; wraps every answer in secure
//! messaging afterwards and drops the session at the first command whose MAC
//! fails; and keeps chosen files (DG3 and DG4 on real chips) behind extended
//! access control, which it never grants.
//!
//! It is test equipment, not a card emulator to trust: its keys are random per run,
//! it does no active or chip authentication, and it answers only what the reader uses.

use std::collections::BTreeMap;

use rand::RngCore;

use crate::bac::{key_seed, AccessError, Chip, KeyPair};
use crate::chip::{ChipFile, EMRTD_AID};
use crate::pace::{self, kdf_aes, password_key, token_input, PaceInfo};
use crate::sm::{aes_block, aes_cmac8, ber_len, ct_eq, pad, retail_mac, tdes_cbc, SecureChannel};
use crate::tlv;

const OK: u16 = 0x9000;
const SECURITY_NOT_SATISFIED: u16 = 0x6982;
const NOT_FOUND: u16 = 0x6A82;
const WRONG_DATA: u16 = 0x6A80;
const WRONG_P1P2: u16 = 0x6B00;
const CONDITIONS: u16 = 0x6985;
const AUTH_FAILED: u16 = 0x6300;
const INS_UNKNOWN: u16 = 0x6D00;
const SM_WRONG: u16 = 0x6988;

/// An answer's data and status word.
type Reply = (Vec<u8>, u16);

/// Where a PACE run stands on the chip's side.
enum PaceState {
    /// MSE:Set AT accepted.
    Set,
    /// The encrypted nonce sent.
    Nonce([u8; 16]),
    /// The mapping done: the new generator.
    Mapped(Vec<u8>),
    /// The ephemeral keys exchanged.
    Agreed {
        ks_enc: Vec<u8>,
        ks_mac: Vec<u8>,
        ours: Vec<u8>,
        theirs: Vec<u8>,
    },
}

/// A chip holding a document.
pub struct SimulatedChip {
    application: BTreeMap<u16, Vec<u8>>,
    card_access: Option<Vec<u8>>,
    eac: Vec<u16>,
    key_information: String,
    bac: bool,
    pace: Option<PaceInfo>,
    in_application: bool,
    selected: Option<u16>,
    challenge: Option<[u8; 8]>,
    pace_state: Option<PaceState>,
    channel: Option<SecureChannel>,
    /// Every command received, as received (tests check what went in clear).
    pub received: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SimulatedChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimulatedChip(..)")
    }
}

impl SimulatedChip {
    /// A chip with `files` (EF.COM, EF.SOD and data groups go into the application;
    /// EF.CardAccess into the master file) whose access keys come from the zone's
    /// `key_information`. It offers PACE when EF.CardAccess announces a protocol
    /// that it runs, and BAC when `bac` is set.
    pub fn new(files: &[(ChipFile, Vec<u8>)], key_information: &str, bac: bool) -> Self {
        let mut application = BTreeMap::new();
        let mut card_access = None;
        for (f, b) in files {
            match f {
                ChipFile::CardAccess => card_access = Some(b.clone()),
                ChipFile::CardSecurity => {}
                _ => {
                    application.insert(f.file_id(), b.clone());
                }
            }
        }
        let pace = card_access
            .as_deref()
            .and_then(|b| pace::parse_card_access(b).ok())
            .and_then(|infos| pace::supported(&infos).cloned());
        Self {
            application,
            card_access,
            eac: vec![],
            key_information: key_information.to_owned(),
            bac,
            pace,
            in_application: false,
            selected: None,
            challenge: None,
            pace_state: None,
            channel: None,
            received: vec![],
        }
    }

    /// Keeps `files` behind extended access control: selecting them answers `6982`.
    pub fn with_eac(mut self, files: &[ChipFile]) -> Self {
        self.eac = files.iter().map(|f| f.file_id()).collect();
        self
    }

    /// Whether a secure channel is open.
    pub fn secured(&self) -> bool {
        self.channel.is_some()
    }

    fn keys(&self) -> KeyPair {
        KeyPair::from_seed(&key_seed(&self.key_information))
    }

    /// Runs one plain command (`header`, `data`, `le`) and returns the answer's data
    /// and status word.
    fn run(&mut self, header: [u8; 4], data: &[u8], le: Option<usize>) -> (Vec<u8>, u16) {
        let [_, ins, p1, p2] = header;
        match ins {
            0xA4 => (vec![], self.select(p1, data)),
            0xB0 | 0xB1 => self.read_binary(ins, p1, p2, data, le),
            0x84 if self.bac && self.channel.is_none() => {
                let mut rnd = [0u8; 8];
                rand::rngs::OsRng.fill_bytes(&mut rnd);
                self.challenge = Some(rnd);
                (rnd.to_vec(), OK)
            }
            0x82 if self.bac && self.channel.is_none() => self.external_authenticate(data),
            0x22 if p1 == 0xC1 && p2 == 0xA4 && self.channel.is_none() => {
                (vec![], self.set_at(data))
            }
            0x86 if self.channel.is_none() => self.general_authenticate(data),
            _ => (vec![], INS_UNKNOWN),
        }
    }

    fn select(&mut self, p1: u8, data: &[u8]) -> u16 {
        match p1 {
            0x04 if data == EMRTD_AID => {
                self.in_application = true;
                self.selected = None;
                OK
            }
            0x04 => NOT_FOUND,
            0x00 | 0x02 if data.len() == 2 => {
                let fid = u16::from_be_bytes([data[0], data[1]]);
                let exists = if self.in_application {
                    self.application.contains_key(&fid)
                } else {
                    fid == 0x011C && self.card_access.is_some()
                };
                if !exists {
                    return NOT_FOUND;
                }
                if self.in_application && (self.channel.is_none() || self.eac.contains(&fid)) {
                    return SECURITY_NOT_SATISFIED;
                }
                self.selected = Some(fid);
                OK
            }
            _ => WRONG_P1P2,
        }
    }

    fn selected_file(&self) -> Option<&[u8]> {
        let fid = self.selected?;
        if self.in_application {
            self.application.get(&fid).map(Vec::as_slice)
        } else {
            self.card_access.as_deref()
        }
    }

    fn read_binary(
        &mut self,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        le: Option<usize>,
    ) -> (Vec<u8>, u16) {
        let Some(file) = self.selected_file() else {
            return (vec![], CONDITIONS);
        };
        let Some(le) = le else {
            return (vec![], WRONG_DATA);
        };
        let offset = if ins == 0xB0 {
            if p1 & 0x80 != 0 {
                // Short file identifiers are not offered.
                return (vec![], WRONG_P1P2);
            }
            usize::from(u16::from_be_bytes([p1, p2]))
        } else {
            match tlv::read_one(data) {
                Ok(t) if t.tag == 0x54 && !t.value.is_empty() && t.value.len() <= 3 => t
                    .value
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | usize::from(b)),
                _ => return (vec![], WRONG_DATA),
            }
        };
        if offset > file.len() {
            return (vec![], WRONG_P1P2);
        }
        let end = file.len().min(offset + le);
        let chunk = file[offset..end].to_vec();
        // Fewer bytes than asked: "end of file reached before reading Le bytes".
        let sw = if end - offset < le { 0x6282 } else { OK };
        if ins == 0xB1 {
            let mut wrapped = vec![0x53];
            ber_len(chunk.len(), &mut wrapped);
            wrapped.extend_from_slice(&chunk);
            return (wrapped, sw);
        }
        (chunk, sw)
    }

    /// BAC's chip side: checks the terminal's cryptogram, answers with its own and
    /// opens the session (ICAO 9303 part 11, 4.3).
    fn external_authenticate(&mut self, data: &[u8]) -> (Vec<u8>, u16) {
        let Some(rnd_ic) = self.challenge.take() else {
            return (vec![], CONDITIONS);
        };
        if data.len() != 40 {
            return (vec![], WRONG_DATA);
        }
        let keys = self.keys();
        let (e, m) = data.split_at(32);
        if !ct_eq(&retail_mac(&keys.mac, &pad(e, 8)), m) {
            return (vec![], AUTH_FAILED);
        }
        let s = tdes_cbc(&keys.enc, e, false);
        if !ct_eq(&s[8..16], &rnd_ic) {
            return (vec![], AUTH_FAILED);
        }
        let mut k_ic = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut k_ic);
        let mut r = rnd_ic.to_vec();
        r.extend_from_slice(&s[..8]);
        r.extend_from_slice(&k_ic);
        let e_ic = tdes_cbc(&keys.enc, &r, true);
        let m_ic = retail_mac(&keys.mac, &pad(&e_ic, 8));
        let mut seed = [0u8; 16];
        for i in 0..16 {
            seed[i] = s[16 + i] ^ k_ic[i];
        }
        let mut ssc = [0u8; 8];
        ssc[..4].copy_from_slice(&rnd_ic[4..]);
        ssc[4..].copy_from_slice(&s[4..8]);
        self.channel = Some(SecureChannel::tdes(
            KeyPair::from_seed(&seed),
            u64::from_be_bytes(ssc),
        ));
        ([e_ic, m_ic.to_vec()].concat(), OK)
    }

    fn set_at(&mut self, data: &[u8]) -> u16 {
        let Some(info) = &self.pace else {
            return WRONG_DATA;
        };
        let Ok(objects) = tlv::read_all(data) else {
            return WRONG_DATA;
        };
        let get = |tag| objects.iter().find(|o| o.tag == tag).map(|o| o.value);
        let param = info.parameter_id.and_then(|p| u8::try_from(p).ok());
        if get(0x80) != Some(info.oid.as_slice())
            || get(0x83) != Some(&[0x01][..])
            || get(0x84).and_then(|v| v.first().copied()) != param
        {
            return WRONG_DATA;
        }
        self.pace_state = Some(PaceState::Set);
        OK
    }

    /// PACE's chip side, one GENERAL AUTHENTICATE step at a time (ICAO 9303 part 11, 4.4).
    fn general_authenticate(&mut self, data: &[u8]) -> (Vec<u8>, u16) {
        let (Some(info), Some(state)) = (self.pace.clone(), self.pace_state.take()) else {
            return (vec![], CONDITIONS);
        };
        let (Some(key_len), Some(curve)) = (info.aes_key_len(), info.curve()) else {
            return (vec![], CONDITIONS);
        };
        let ops = pace::ops(curve);
        let object = match tlv::read_one(data) {
            Ok(t) if t.tag == 0x7C => match tlv::read_all(t.value) {
                Ok(inner) => inner.first().map(|o| (o.tag, o.value.to_vec())),
                Err(_) => return (vec![], WRONG_DATA),
            },
            _ => return (vec![], WRONG_DATA),
        };
        let draw = || {
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k[0] &= 0x7F;
            k
        };
        let answer = |tag: u8, value: &[u8]| {
            let mut inner = vec![tag];
            ber_len(value.len(), &mut inner);
            inner.extend_from_slice(value);
            let mut out = vec![0x7C];
            ber_len(inner.len(), &mut out);
            out.extend_from_slice(&inner);
            (out, OK)
        };
        let step = || -> Result<(Reply, Option<PaceState>), AccessError> {
            Ok(match (state, object) {
                (PaceState::Set, None) => {
                    let mut s = [0u8; 16];
                    rand::rngs::OsRng.fill_bytes(&mut s);
                    let k_pi = kdf_aes(&password_key(&self.key_information), 3, key_len);
                    let z = aes_block(&k_pi, &s, true)?;
                    (answer(0x80, &z), Some(PaceState::Nonce(s)))
                }
                (PaceState::Nonce(s), Some((0x81, theirs))) => {
                    let key = draw();
                    let ours = (ops.mapping_point)(&key)?;
                    if ours == theirs {
                        return Err(AccessError::Authentication("mapping point echoed"));
                    }
                    let generator = (ops.mapped_generator)(&s, &key, &theirs)?;
                    (answer(0x82, &ours), Some(PaceState::Mapped(generator)))
                }
                (PaceState::Mapped(generator), Some((0x83, theirs))) => {
                    let key = draw();
                    let ours = (ops.ephemeral)(&generator, &key)?;
                    if ours == theirs {
                        return Err(AccessError::Authentication("ephemeral point echoed"));
                    }
                    let shared = (ops.shared_x)(&key, &theirs)?;
                    let state = PaceState::Agreed {
                        ks_enc: kdf_aes(&shared, 1, key_len),
                        ks_mac: kdf_aes(&shared, 2, key_len),
                        ours: ours.clone(),
                        theirs,
                    };
                    (answer(0x84, &ours), Some(state))
                }
                (
                    PaceState::Agreed {
                        ks_enc,
                        ks_mac,
                        ours,
                        theirs,
                    },
                    Some((0x85, token)),
                ) => {
                    let expected = aes_cmac8(&ks_mac, &token_input(&info.oid, &ours))?;
                    if !ct_eq(&expected, &token) {
                        return Err(AccessError::Authentication("the terminal's token"));
                    }
                    let t_ic = aes_cmac8(&ks_mac, &token_input(&info.oid, &theirs))?;
                    self.channel = Some(SecureChannel::aes(&ks_enc, &ks_mac)?);
                    (answer(0x86, &t_ic), None)
                }
                _ => return Err(AccessError::Malformed("step out of order")),
            })
        };
        match step() {
            Ok((reply, next)) => {
                self.pace_state = next;
                reply
            }
            Err(AccessError::Authentication(_)) => (vec![], AUTH_FAILED),
            Err(_) => (vec![], WRONG_DATA),
        }
    }
}

impl Chip for SimulatedChip {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, AccessError> {
        self.received.push(apdu.to_vec());
        if let Some(mut channel) = self.channel.take() {
            let Ok(cmd) = channel.open_command(apdu) else {
                // A command that fails secure messaging ends the session.
                self.in_application = false;
                self.selected = None;
                return Ok(SM_WRONG.to_be_bytes().to_vec());
            };
            self.channel = Some(channel);
            let (data, sw) = self.run(cmd.header, &cmd.data, cmd.le);
            let odd = cmd.header[1] & 1 == 1;
            return match self.channel.as_mut() {
                Some(ch) => ch.seal_response(&data, sw, odd),
                None => Ok(SM_WRONG.to_be_bytes().to_vec()),
            };
        }
        let (header, rest) = apdu
            .split_first_chunk::<4>()
            .ok_or(AccessError::Malformed("command shorter than its header"))?;
        // Short APDUs: [Lc data] [Le].
        let (data, le) = match rest {
            [] => (&[][..], None),
            [le] => (&[][..], Some(*le)),
            [lc, body @ ..] => {
                let lc = usize::from(*lc);
                match body.len() {
                    n if n == lc => (body, None),
                    n if n == lc + 1 => (&body[..lc], Some(body[lc])),
                    _ => return Ok(WRONG_DATA.to_be_bytes().to_vec()),
                }
            }
        };
        let le = le.map(|l| if l == 0 { 256 } else { usize::from(l) });
        let (mut out, sw) = self.run(*header, data, le);
        out.extend_from_slice(&sw.to_be_bytes());
        Ok(out)
    }
}
