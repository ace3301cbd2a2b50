//! Fuzz target: the chip reader against a chip whose every answer is made up, the
//! simulated chip given made-up commands, and secure messaging's both sides given
//! made-up protected APDUs. Each must end in an error or an answer, never a panic,
//! a loop or a huge allocation; the reader must never return files from a chip that
//! cannot know the access key.
#![no_main]

use ipseity_document::bac::{AccessError, Chip, KeyPair};
use ipseity_document::reader::read_chip;
use ipseity_document::sim::SimulatedChip;
use ipseity_document::sm::SecureChannel;
use ipseity_document::ChipFile;
use libfuzzer_sys::fuzz_target;

/// Answers each command with the next length-prefixed slice of the input.
struct Made<'a>(&'a [u8]);

impl Chip for Made<'_> {
    fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, AccessError> {
        let (&n, rest) = self.0.split_first().ok_or(AccessError::Status(0x6F00))?;
        let n = (n as usize).min(rest.len());
        let (answer, rest) = rest.split_at(n);
        self.0 = rest;
        Ok(answer.to_vec())
    }
}

const KEY: &str = "L898902C3674081221204159";

fuzz_target!(|data: &[u8]| {
    assert!(
        read_chip(&mut Made(data), KEY).is_err(),
        "files from a chip that answered made-up bytes"
    );

    // The simulated chip, offering PACE and BAC, fed length-prefixed commands.
    let files = vec![
        (ChipFile::Com, vec![0x60, 0x03, 0x5C, 0x01, 0x61]),
        (ChipFile::Dg(1), vec![0x61, 0x02, 0x5F, 0x1F]),
        (
            ChipFile::CardAccess,
            vec![
                0x31, 0x14, 0x30, 0x12, 0x06, 0x0A, 0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04,
                0x02, 0x02, 0x02, 0x01, 0x02, 0x02, 0x01, 0x0D,
            ],
        ),
    ];
    let mut chip = SimulatedChip::new(&files, KEY, true);
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize).min(tail.len());
        let (apdu, tail) = tail.split_at(n);
        let _ = chip.transmit(apdu);
        rest = tail;
    }

    // Both sides of secure messaging, on the whole input.
    let mut t = SecureChannel::tdes(KeyPair::from_seed(b"seed"), 1);
    let _ = t.unprotect(data);
    let _ = t.open_command(data);
    if let Ok(mut a) = SecureChannel::aes(&[7; 16], &[9; 16]) {
        let _ = a.unprotect(data);
        let _ = a.open_command(data);
    }
});
