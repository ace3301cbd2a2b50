//! Fuzz target: PACE against a chip whose every answer is made up, and EF.CardAccess
//! from arbitrary bytes. The protocol must end in an error, never panic, and never
//! establish a session with a chip that cannot know the password.
#![no_main]

use ipseity_document::bac::{AccessError, Chip};
use ipseity_document::pace::{parse_card_access, run_pace_with, PaceInfo, TerminalKeys};
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

fuzz_target!(|data: &[u8]| {
    let _ = parse_card_access(data);
    for parameter_id in [12, 13] {
        let info = PaceInfo {
            oid: vec![0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, 0x02],
            version: 2,
            parameter_id: Some(parameter_id),
        };
        let keys = TerminalKeys {
            mapping: [0x11; 32],
            agreement: [0x22; 32],
        };
        let r = run_pace_with(&mut Made(data), "T22000129364081251010318", &info, &keys);
        assert!(r.is_err(), "a session with a chip that answered made-up bytes");
    }
});
