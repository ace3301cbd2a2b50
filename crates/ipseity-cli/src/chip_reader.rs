//! A chip read through a PC/SC reader (`--reader`), when this build has the `pcsc`
//! feature: the transport behind `ipseity_document::Chip`, which the document
//! crate's reader drives (PACE or BAC, secure messaging, the eMRTD files). Without
//! the feature, `--reader` is refused with a clear error, so the default build needs
//! no PC/SC library.

use ipseity_document::bac::AccessError;
use ipseity_document::reader::{read_chip, ChipRead};

use crate::error::CliError;

/// Reads the chip on `reader` (the first reader holding a card when empty), opened
/// with the zone's key information.
pub fn read(reader: &str, key_information: &str) -> anyhow::Result<ChipRead> {
    let mut chip = transport::connect(reader)?;
    read_chip(&mut chip, key_information).map_err(|e| access_error(&e).into())
}

fn access_error(e: &AccessError) -> CliError {
    match e {
        AccessError::Authentication(_) | AccessError::Status(0x6300) => CliError::input(
            "chip_access_denied",
            format!(
                "the chip refused the access key ({e}): check the zone given with --mrz \
                 (document number, date of birth, date of expiry)"
            ),
        ),
        AccessError::Transport(t) => {
            CliError::input("reader_unavailable", format!("the reader failed: {t}"))
        }
        _ => CliError::input("chip_access_failed", format!("reading the chip: {e}")),
    }
}

#[cfg(feature = "pcsc")]
mod transport {
    use ipseity_document::bac::{AccessError, Chip};

    use crate::error::CliError;

    /// A card in a PC/SC reader.
    pub struct PcscChip {
        card: pcsc::Card,
    }

    /// Connects to the card in `reader`, or in the first reader that holds one.
    pub fn connect(reader: &str) -> anyhow::Result<PcscChip> {
        let unavailable = |why: String| CliError::input("reader_unavailable", why);
        let ctx = pcsc::Context::establish(pcsc::Scope::User)
            .map_err(|e| unavailable(format!("no PC/SC service (is pcscd running?): {e}")))?;
        let mut buf = vec![0u8; 16 * 1024];
        let names: Vec<std::ffi::CString> = ctx
            .list_readers(&mut buf)
            .map_err(|e| unavailable(format!("no smart-card reader found: {e}")))?
            .map(std::ffi::CStr::to_owned)
            .collect();
        if names.is_empty() {
            return Err(unavailable("no smart-card reader found".into()).into());
        }
        let mut tried = vec![];
        for name in &names {
            let shown = name.to_string_lossy();
            if !reader.is_empty() && shown != reader {
                continue;
            }
            match ctx.connect(name, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY) {
                Ok(card) => return Ok(PcscChip { card }),
                Err(e) => tried.push(format!("{shown}: {e}")),
            }
        }
        let listed: Vec<String> = names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        Err(unavailable(if tried.is_empty() {
            format!("no reader named {reader:?}; readers: {}", listed.join(", "))
        } else {
            format!("no chip could be reached: {}", tried.join("; "))
        })
        .into())
    }

    impl PcscChip {
        fn send(&mut self, apdu: &[u8]) -> Result<Vec<u8>, AccessError> {
            let mut out = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
            let r = self
                .card
                .transmit(apdu, &mut out)
                .map_err(|e| AccessError::Transport(e.to_string()))?;
            Ok(r.to_vec())
        }
    }

    impl Chip for PcscChip {
        /// Sends an APDU; under T=0 fetches what `61xx` announces with GET RESPONSE and
        /// repeats a command that `6Cxx` says needs another Le, as ISO/IEC 7816-4 asks.
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, AccessError> {
            let mut r = self.send(apdu)?;
            if let [.., 0x6C, le] = r[..] {
                if apdu.len() >= 5 {
                    let mut again = apdu.to_vec();
                    if let Some(last) = again.last_mut() {
                        *last = le;
                    }
                    r = self.send(&again)?;
                }
            }
            let mut data = vec![];
            // At most 64 continuations: a card announcing more is not answering sense.
            for _ in 0..64 {
                match r[..] {
                    [ref d @ .., 0x61, n] => {
                        data.extend_from_slice(d);
                        r = self.send(&[0x00, 0xC0, 0x00, 0x00, n])?;
                    }
                    _ => {
                        data.extend_from_slice(&r);
                        return Ok(data);
                    }
                }
            }
            Err(AccessError::Malformed("endless GET RESPONSE chain"))
        }
    }
}

#[cfg(not(feature = "pcsc"))]
mod transport {
    use ipseity_document::bac::{AccessError, Chip};

    use crate::error::CliError;

    /// Never made: this build reads no reader.
    pub enum PcscChip {}

    impl Chip for PcscChip {
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, AccessError> {
            match *self {}
        }
    }

    pub fn connect(_reader: &str) -> anyhow::Result<PcscChip> {
        Err(CliError::input(
            "reader_unsupported",
            "this build of ipseity reads no smart-card reader: build it with \
             `cargo build --release -p ipseity-cli --features pcsc` (needs the PC/SC library, \
             Debian package libpcsclite-dev, and pcscd), or read the chip with \
             another tool and pass its files with --chip DIR",
        )
        .into())
    }
}
