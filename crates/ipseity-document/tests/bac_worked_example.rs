//! BAC and secure messaging against ICAO 9303 part 11's worked example
//! (appendix D), as recorded in `../shared/icao/worked_examples.json`: key
//! derivation, mutual authentication with a simulated chip that answers the
//! recorded APDUs, session keys and counter, and the first protected command
//! and response. Skips with a message where the folder is absent;
//! `IPSEITY_REQUIRE_SHARED=1`, as in CI, turns the skip into a failure.

mod common;

use common::{field, hex, Recorded};
use ipseity_document::bac::{self, AccessError, KeyPair};
use ipseity_document::Mrz;
use serde_json::Value;

fn example() -> Option<Value> {
    let dir = common::icao()?;
    let t = std::fs::read_to_string(dir.join("worked_examples.json")).expect("worked examples");
    Some(serde_json::from_str::<Value>(&t).expect("JSON")["bac_9303_p11_appendix_D"].clone())
}

fn arr<const N: usize>(v: Vec<u8>) -> [u8; N] {
    v.try_into().expect("length")
}

#[test]
fn bac_follows_the_worked_example() {
    let Some(ex) = example() else { return };
    let (inp, exp) = (&ex["inputs"], &ex["expected"]);
    // Key information from a zone: the example's number is 8 characters, so
    // the zone pads it with a filler.
    let info = field(inp, "mrz_information");
    let seed = bac::key_seed(info);
    assert_eq!(seed.to_vec(), hex(field(exp, "Kseed_hex")));
    let keys = KeyPair::from_seed(&seed);
    assert_eq!(keys.enc.to_vec(), hex(field(exp, "Kenc_hex")));
    assert_eq!(keys.mac.to_vec(), hex(field(exp, "Kmac_hex")));

    let rnd_ic: [u8; 8] = arr(hex(field(inp, "RND.IC_hex")));
    let rnd_ifd: [u8; 8] = arr(hex(field(inp, "RND.IFD_hex")));
    let k_ifd: [u8; 16] = arr(hex(field(inp, "K.IFD_hex")));
    assert_eq!(
        bac::authenticate_data(&keys, &rnd_ic, &rnd_ifd, &k_ifd),
        hex(field(exp, "EXTERNAL AUTHENTICATE cmd_data"))
    );

    let exchange: Vec<(Vec<u8>, Vec<u8>)> = ex["apdu_exchange (TestDoBAC mock card)"]
        .as_array()
        .expect("exchange")
        .iter()
        .map(|e| {
            (
                hex(e["command"].as_str().expect("command")),
                hex(e["response"].as_str().expect("response")),
            )
        })
        .collect();
    let mut chip = Recorded {
        exchange: exchange.clone(),
        next: 0,
    };
    let mut channel = bac::run_bac_with(&mut chip, info, &rnd_ifd, &k_ifd).expect("BAC");
    assert_eq!(channel.enc_key().to_vec(), hex(field(exp, "KSenc_hex")));
    assert_eq!(channel.mac_key().to_vec(), hex(field(exp, "KSmac_hex")));
    assert_eq!(channel.ssc(), hex(field(exp, "SSC_hex")));

    // D.4: SELECT EF.COM, protected, and the chip's protected answer.
    let sm = &ex["secure_messaging_D4_select_EF_COM"];
    let apdu = channel
        .protect([0x00, 0xA4, 0x02, 0x0C], &[0x01, 0x1E], None)
        .expect("protect");
    assert_eq!(apdu, hex(field(sm, "expected_protected_command_hex")));
    assert_eq!(channel.ssc(), hex(field(sm, "SSC_after_command_hex")));
    let (data, sw) = channel
        .unprotect(&hex(field(sm, "protected_response_hex")))
        .expect("unprotect");
    assert_eq!((data.len(), sw), (0, 0x9000));
    assert_eq!(channel.ssc(), hex(field(sm, "SSC_after_response_hex")));

    // A zone misread by one digit derives other keys: the chip refuses them.
    let wrong = info.replacen("6908061", "6908071", 1);
    let mut chip = Recorded {
        exchange: exchange.clone(),
        next: 0,
    };
    assert_eq!(
        bac::run_bac_with(&mut chip, &wrong, &rnd_ifd, &k_ifd).unwrap_err(),
        AccessError::Status(0x6300)
    );
    // A tampered answer from the chip fails its MAC.
    let mut forged = exchange.clone();
    forged[1].1[3] ^= 1;
    let mut chip = Recorded {
        exchange: forged,
        next: 0,
    };
    assert!(matches!(
        bac::run_bac_with(&mut chip, info, &rnd_ifd, &k_ifd),
        Err(AccessError::Authentication(_))
    ));
    // A protected response whose MAC is altered is refused.
    let mut chip = Recorded {
        exchange: exchange.clone(),
        next: 0,
    };
    let mut channel2 = bac::run_bac_with(&mut chip, info, &rnd_ifd, &k_ifd).expect("BAC");
    let _ = channel2
        .protect([0x00, 0xA4, 0x02, 0x0C], &[0x01, 0x1E], None)
        .expect("protect");
    let mut bad = hex(field(sm, "protected_response_hex"));
    bad[8] ^= 1;
    assert!(matches!(
        channel2.unprotect(&bad),
        Err(AccessError::Authentication(_))
    ));
}

#[test]
fn key_information_comes_from_the_zone() {
    // The example's document as a TD3 zone: the key information the zone
    // yields is the one the worked example starts from.
    let zone = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C<3UTO6908061F9406236ZE184226B<<<<<14";
    let m = Mrz::parse(zone).expect("zone");
    assert_eq!(
        m.key_information().as_deref(),
        Some("L898902C<369080619406236")
    );
}
