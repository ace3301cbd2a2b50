//! Reading a chip, as a border desk's reader does: PACE when EF.CardAccess offers a
//! protocol we run, else BAC; then the eMRTD application under secure messaging,
//! EF.COM, EF.SOD and every data group EF.COM lists. Files the chip withholds
//! (DG3 and DG4 need extended access control, which needs a state's terminal
//! certificates) are reported as withheld, not as a failure. What comes out is
//! the same list of files that a reader's dump gives, ready for passive
//! authentication: reading a chip proves nothing about it by itself.
//!
//! Every length the chip states is bounded ([`MAX_FILE`]), and the reading loop
//! ends on a chip that stops sending data.

use crate::bac::{run_bac, split_status, AccessError, Chip};
use crate::chip::{data_group_of_tag, ChipFile, EMRTD_AID};
use crate::lds::EfCom;
use crate::pace;
use crate::sm::{Cipher, SecureChannel};

/// The largest file read (a DG2 with a large JPEG 2000 portrait stays well under it).
pub const MAX_FILE: usize = 1 << 20;
/// Bytes asked for by one READ BINARY under secure messaging: 223 keeps a padded
/// answer and its objects inside a short response APDU.
const CHUNK: usize = 0xDF;

/// The access protocol that opened the chip.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// PACE, with the protocol's OID in dotted form.
    Pace {
        /// `0.4.0.127.0.7.2.2.4.2.2` and the like.
        protocol: String,
    },
    /// Basic Access Control.
    Bac,
}

/// What a chip gave.
#[derive(Debug, Clone)]
pub struct ChipRead {
    /// How the chip was opened.
    pub access: Access,
    /// The session's cipher suite.
    pub cipher: Cipher,
    /// Why PACE was not used although EF.CardAccess was present, if so.
    pub pace_skipped: Option<String>,
    /// The files read, in the order read.
    pub files: Vec<(ChipFile, Vec<u8>)>,
    /// Files EF.COM lists that the chip would not give, with its status word
    /// (`6982`: security status not satisfied, i.e. extended access control).
    pub withheld: Vec<(ChipFile, u16)>,
}

fn check(sw: u16) -> Result<(), AccessError> {
    if sw == 0x9000 {
        Ok(())
    } else {
        Err(AccessError::Status(sw))
    }
}

/// Where a file is read from: in clear (EF.CardAccess, before any protocol) or
/// through the session.
enum Link<'a> {
    Plain,
    Secure(&'a mut SecureChannel),
}

/// Sends one command and returns the answer's data and status word.
fn exchange(
    chip: &mut dyn Chip,
    link: &mut Link<'_>,
    header: [u8; 4],
    data: &[u8],
    le: Option<usize>,
) -> Result<(Vec<u8>, u16), AccessError> {
    match link {
        Link::Secure(ch) => {
            let apdu = ch.protect(header, data, le)?;
            let reply = chip.transmit(&apdu)?;
            ch.unprotect(&reply)
        }
        Link::Plain => {
            let mut apdu = header.to_vec();
            if !data.is_empty() {
                apdu.push(data.len() as u8);
                apdu.extend_from_slice(data);
            }
            if let Some(le) = le {
                apdu.push((le & 0xFF) as u8);
            }
            let reply = chip.transmit(&apdu)?;
            let (d, sw) = split_status(&reply)?;
            Ok((d.to_vec(), sw))
        }
    }
}

/// The total length of a BER-TLV object from its first bytes, when they hold its
/// tag and length.
fn object_length(head: &[u8]) -> Option<usize> {
    let (_, p) = crate::tlv::read_tag(head, 0).ok()?;
    let first = *head.get(p)?;
    if first < 0x80 {
        return Some(p + 1 + usize::from(first));
    }
    let n = usize::from(first & 0x7F);
    if n == 0 || n > 3 {
        return None;
    }
    let len = head
        .get(p + 1..p + 1 + n)?
        .iter()
        .fold(0usize, |a, &b| (a << 8) | usize::from(b));
    Some(p + 1 + n + len)
}

/// READ BINARY at `offset`: the even instruction up to offset 32,767, the odd one
/// (offset in `DO'54'`, data in `DO'53'`) beyond.
fn read_at(
    chip: &mut dyn Chip,
    link: &mut Link<'_>,
    offset: usize,
    len: usize,
) -> Result<Vec<u8>, AccessError> {
    let (data, sw) = if offset <= 0x7FFF {
        exchange(
            chip,
            link,
            [0x00, 0xB0, (offset >> 8) as u8, offset as u8],
            &[],
            Some(len),
        )?
    } else {
        let o = [(offset >> 16) as u8, (offset >> 8) as u8, offset as u8];
        let (d, sw) = exchange(
            chip,
            link,
            [0x00, 0xB1, 0x00, 0x00],
            &[0x54, 0x03, o[0], o[1], o[2]],
            Some(len + 4),
        )?;
        let t = crate::tlv::read_one(&d)
            .ok()
            .filter(|t| t.tag == 0x53)
            .ok_or(AccessError::Malformed(
                "READ BINARY's odd answer is not DO'53'",
            ))?;
        (t.value.to_vec(), sw)
    };
    // 6282: end of file reached before the bytes asked for, still data.
    if sw != 0x9000 && sw != 0x6282 {
        return Err(AccessError::Status(sw));
    }
    Ok(data)
}

/// Selects and reads one file; `Ok(None)` with the status word when the chip
/// withholds it or does not have it.
fn read_file(
    chip: &mut dyn Chip,
    link: &mut Link<'_>,
    fid: u16,
) -> Result<Result<Vec<u8>, u16>, AccessError> {
    let (_, sw) = exchange(
        chip,
        link,
        [0x00, 0xA4, 0x02, 0x0C],
        &fid.to_be_bytes(),
        None,
    )?;
    if sw != 0x9000 {
        return Ok(Err(sw));
    }
    let mut file = read_at(chip, link, 0, 8)?;
    let total = object_length(&file).ok_or(AccessError::Malformed(
        "a file that does not start with a TLV header",
    ))?;
    if total > MAX_FILE {
        return Err(AccessError::Malformed("a file larger than 1 MiB"));
    }
    file.truncate(total);
    while file.len() < total {
        let want = CHUNK.min(total - file.len());
        let chunk = read_at(chip, link, file.len(), want)?;
        if chunk.is_empty() {
            return Err(AccessError::Malformed("the chip stopped sending a file"));
        }
        let take = chunk.len().min(total - file.len());
        file.extend_from_slice(&chunk[..take]);
    }
    Ok(Ok(file))
}

/// Opens the chip with the zone's key information and reads its files.
pub fn read_chip(chip: &mut dyn Chip, key_information: &str) -> Result<ChipRead, AccessError> {
    let mut files = vec![];
    // EF.CardAccess, in clear in the master file; absent on BAC-only chips.
    let card_access = match read_file(chip, &mut Link::Plain, ChipFile::CardAccess.file_id()) {
        Ok(Ok(b)) => Some(b),
        Ok(Err(_)) | Err(AccessError::Status(_)) => None,
        Err(e) => return Err(e),
    };
    let mut pace_skipped = None;
    let mut opened = None;
    if let Some(ca) = &card_access {
        files.push((ChipFile::CardAccess, ca.clone()));
        match pace::parse_card_access(ca) {
            Ok(infos) => match pace::supported(&infos) {
                Some(info) => match pace::run_pace(chip, key_information, info) {
                    Ok(session) => {
                        let protocol = crate::asn1::oid_string(&session.info.oid);
                        opened = Some((Access::Pace { protocol }, session.channel()?));
                    }
                    // A wrong zone: BAC would fail the same way.
                    Err(e @ AccessError::Authentication(_)) => return Err(e),
                    Err(e) => pace_skipped = Some(format!("PACE failed ({e}); BAC used")),
                },
                None => {
                    pace_skipped =
                        Some("EF.CardAccess offers no PACE protocol that is supported".into())
                }
            },
            Err(e) => pace_skipped = Some(format!("EF.CardAccess unreadable ({e})")),
        }
    }
    let (access, mut channel) = match opened {
        Some((access, mut ch)) => {
            let (_, sw) = exchange(
                chip,
                &mut Link::Secure(&mut ch),
                [0x00, 0xA4, 0x04, 0x0C],
                &EMRTD_AID,
                None,
            )?;
            check(sw)?;
            (access, ch)
        }
        None => {
            let (_, sw) = exchange(
                chip,
                &mut Link::Plain,
                [0x00, 0xA4, 0x04, 0x0C],
                &EMRTD_AID,
                None,
            )?;
            check(sw)?;
            (Access::Bac, run_bac(chip, key_information)?)
        }
    };
    let cipher = channel.cipher();
    let mut link = Link::Secure(&mut channel);
    let com = read_file(chip, &mut link, ChipFile::Com.file_id())?.map_err(AccessError::Status)?;
    let listed = EfCom::parse(&com)
        .map_err(|_| AccessError::Malformed("EF.COM cannot be read"))?
        .tags;
    files.push((ChipFile::Com, com));
    let sod = read_file(chip, &mut link, ChipFile::Sod.file_id())?.map_err(AccessError::Status)?;
    files.push((ChipFile::Sod, sod));
    let mut withheld = vec![];
    let mut groups: Vec<u8> = listed.into_iter().filter_map(data_group_of_tag).collect();
    groups.sort_unstable();
    groups.dedup();
    for n in groups {
        let f = ChipFile::Dg(n);
        match read_file(chip, &mut link, f.file_id())? {
            Ok(b) => files.push((f, b)),
            Err(sw) => withheld.push((f, sw)),
        }
    }
    Ok(ChipRead {
        access,
        cipher,
        pace_skipped,
        files,
        withheld,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_lengths_come_from_the_header() {
        assert_eq!(object_length(&[0x60, 0x16, 1, 2]), Some(0x18));
        assert_eq!(object_length(&[0x75, 0x82, 0x01, 0x00, 0]), Some(4 + 256));
        assert_eq!(object_length(&[0x7F, 0x61, 0x81, 0x80]), Some(4 + 128));
        assert_eq!(object_length(&[0x75, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(object_length(&[0x75]), None);
        assert_eq!(
            crate::asn1::oid_string(&[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, 0x02]),
            "0.4.0.127.0.7.2.2.4.2.2"
        );
    }
}
