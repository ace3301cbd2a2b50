//! PACE with the generic mapping over ECDH against ICAO 9303 part 11's worked
//! example (appendix G.1: brainpoolP256r1, AES-128), as recorded in
//! `../shared/icao/worked_examples.json`: the password key, the chip's nonce, the
//! mapping, the key agreement, the session keys and both tokens, with a simulated
//! chip that answers the recorded APDUs and refuses anything else. A misread zone
//! fails. Skips with a message where the folder is absent; `IPSEITY_REQUIRE_SHARED=1`,
//! as in CI, turns the skip into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::{field, hex, Recorded};
use ipseity_document::bac::AccessError;
use ipseity_document::pace::{self, TerminalKeys};
use serde_json::Value;

fn example() -> Option<Value> {
    let dir = common::icao()?;
    let t = std::fs::read_to_string(dir.join("worked_examples.json")).expect("worked examples");
    Some(
        serde_json::from_str::<Value>(&t).expect("JSON")["pace_9303_p11_appendix_G1_ecdh_gm"]
            .clone(),
    )
}

fn arr<const N: usize>(v: Vec<u8>) -> [u8; N] {
    v.try_into().expect("length")
}

fn setup(ex: &Value) -> (Recorded, pace::PaceInfo, TerminalKeys) {
    let inp = &ex["inputs"];
    let exchange = ex["apdu_exchange (TestDoPace_GM_ECDH mock card)"]
        .as_array()
        .expect("exchange")
        .iter()
        .map(|e| {
            (
                hex(e["command"].as_str().unwrap()),
                hex(e["response"].as_str().unwrap()),
            )
        })
        .collect();
    let infos = pace::parse_card_access(&hex(field(inp, "EF.CardAccess_hex"))).expect("CardAccess");
    assert_eq!(infos.len(), 1);
    let keys = TerminalKeys {
        mapping: arr(hex(field(inp, "terminal_mapping_private_key_hex"))),
        agreement: arr(hex(field(inp, "terminal_ephemeral_private_key_hex"))),
    };
    (
        Recorded { exchange, next: 0 },
        infos.into_iter().next().unwrap(),
        keys,
    )
}

#[test]
fn pace_follows_the_worked_example() {
    let Some(ex) = example() else { return };
    let (inp, exp) = (&ex["inputs"], &ex["expected"]);
    let mrzi = field(inp, "MRZi");

    // The password's key and the key that decrypts the nonce.
    let k = pace::password_key(mrzi);
    assert_eq!(k.to_vec(), hex(field(exp, "K = SHA-1")));
    assert_eq!(pace::kdf_aes(&k, 3, 16), hex(field(exp, "K_pi_hex")));
    // The tokens' inputs are built as the example builds them.
    let oid = hex("04007f00070202040202");
    let chip_eph = [
        vec![0x04],
        hex(field(exp, "chip_ephemeral_public_key_x_hex")),
        hex(field(exp, "chip_ephemeral_public_key_y_hex")),
    ]
    .concat();
    assert_eq!(
        pace::token_input(&oid, &chip_eph),
        hex(field(exp, "auth_token_input_T_IFD_data_hex"))
    );

    // The whole run against the recorded chip: every command we send is the one
    // recorded (the chip would refuse another), and the session keys are the example's.
    let (mut chip, info, keys) = setup(&ex);
    let session = pace::run_pace_with(&mut chip, mrzi, &info, &keys).expect("PACE succeeds");
    assert_eq!(
        chip.next,
        chip.exchange.len(),
        "every recorded step was used"
    );
    assert_eq!(session.ks_enc, hex(field(exp, "KSenc_hex")));
    assert_eq!(session.ks_mac, hex(field(exp, "KSmac_hex")));
    assert_eq!(session.chip_ephemeral, chip_eph);
    // Secure messaging starts under those keys with a 16-byte counter at zero.
    let channel = session.channel().expect("channel");
    assert_eq!(channel.enc_key(), hex(field(exp, "KSenc_hex")));
    assert_eq!(channel.mac_key(), hex(field(exp, "KSmac_hex")));
    let ssc = exp
        .as_object()
        .expect("object")
        .iter()
        .find(|(k, _)| k.starts_with("SSC after PACE"))
        .and_then(|(_, v)| v.as_str())
        .expect("SSC after PACE");
    assert!(ssc.starts_with("0 (all zero, 16 bytes)"), "{ssc}");
    assert_eq!(channel.ssc(), vec![0u8; 16]);
    assert!(
        !format!("{session:?}").contains("f5f0"),
        "keys never reach a log"
    );
}

#[test]
fn a_misread_zone_fails_and_never_yields_a_session() {
    let Some(ex) = example() else { return };
    let mrzi = field(&ex["inputs"], "MRZi");
    // One digit of the document number misread: a different nonce, a different
    // generator, so the chip (which checks our points against its own run) refuses.
    let wrong = mrzi.replacen('2', "3", 1);
    let (mut chip, info, keys) = setup(&ex);
    assert!(pace::run_pace_with(&mut chip, &wrong, &info, &keys).is_err());

    // A chip whose token is wrong (the last step's answer changed) is refused too.
    let (mut chip, info, keys) = setup(&ex);
    let last = chip.exchange.len() - 1;
    let resp = &mut chip.exchange[last].1;
    let i = resp.len() - 3;
    resp[i] ^= 1;
    let err = pace::run_pace_with(&mut chip, mrzi, &info, &keys).unwrap_err();
    assert!(matches!(err, AccessError::Authentication(_)), "{err}");
}

#[test]
fn real_card_access_files_offer_what_they_say() {
    let Some(dir) = common::icao() else { return };
    let read = |n: &str| std::fs::read(dir.join("vectors/ef").join(n)).expect("vector");
    let gm = hex("04007f00070202040202");
    // Austria: the generic mapping on brainpoolP256r1 only.
    let at = pace::parse_card_access(&read("card_access_at.bin")).expect("parses");
    assert_eq!(at.len(), 1);
    assert_eq!(
        (at[0].oid.clone(), at[0].version, at[0].parameter_id),
        (gm.clone(), 2, Some(13))
    );
    assert_eq!(pace::supported(&at), Some(&at[0]));
    // Germany: the generic mapping and chip authentication mapping; the first is run.
    let de = pace::parse_card_access(&read("card_access_de.bin")).expect("parses");
    assert_eq!(de.len(), 2);
    assert_eq!(de[1].oid, hex("04007f00070202040602"));
    assert_eq!(pace::supported(&de).map(|i| i.oid.clone()), Some(gm));
    assert_eq!(
        pace::supported(&de[1..]),
        None,
        "chip authentication mapping is not run"
    );
}
