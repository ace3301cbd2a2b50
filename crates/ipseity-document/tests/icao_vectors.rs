//! The machine-readable zone reader against the MRZ vectors in
//! `../shared/icao/mrz_vectors.json` (gmrtd's test cases; see its SOURCE.md).
//! Skips with a message where that folder is absent (a user's clone);
//! `IPSEITY_REQUIRE_SHARED=1`, as in CI, turns the skip into a failure.

use ipseity_document::{check_digit, parse_dg1, parse_dg2, EfCom, ImageFormat, Mrz};
use serde_json::Value;

mod common;

use common::shared;

fn vectors() -> Option<Value> {
    let file = shared().join("icao/mrz_vectors.json");
    match std::fs::read_to_string(&file) {
        Ok(text) => Some(serde_json::from_str(&text).expect("vectors JSON")),
        Err(_) => {
            assert!(
                std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
                "IPSEITY_REQUIRE_SHARED is set but {} is missing",
                file.display()
            );
            eprintln!("skipped: no ICAO vectors at {}", file.display());
            None
        }
    }
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap_or_else(|| panic!("{key}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

#[test]
fn valid_zones_read_as_expected() {
    let Some(v) = vectors() else { return };
    let cases = list(&v, "mrz_decode_valid");
    assert!(cases.len() >= 4);
    for c in cases {
        let mrz = s(c, "mrz");
        let m = Mrz::parse(mrz).unwrap_or_else(|e| panic!("{mrz}: {e}"));
        assert!(m.is_valid(), "{mrz}: {:?}", m.checks);
        let f = &c["expected_fields"];
        assert_eq!(m.document_code, s(f, "DocumentCode"), "{mrz}");
        assert_eq!(m.issuing_state, s(f, "IssuingState"), "{mrz}");
        assert_eq!(
            m.primary_identifier,
            s(&f["NameOfHolder"], "Primary"),
            "{mrz}"
        );
        assert_eq!(
            m.secondary_identifier,
            s(&f["NameOfHolder"], "Secondary"),
            "{mrz}"
        );
        assert_eq!(m.document_number, s(f, "DocumentNumber"), "{mrz}");
        assert_eq!(m.nationality, s(f, "Nationality"), "{mrz}");
        assert_eq!(m.date_of_birth, s(f, "DateOfBirth"), "{mrz}");
        assert_eq!(m.sex, s(f, "Sex"), "{mrz}");
        assert_eq!(m.date_of_expiry, s(f, "DateOfExpiry"), "{mrz}");
        assert_eq!(m.optional_data, s(f, "OptionalData"), "{mrz}");
        assert_eq!(m.optional_data_2, s(f, "OptionalData2"), "{mrz}");
    }
}

#[test]
fn invalid_zones_are_refused_or_fail_a_named_check() {
    let Some(v) = vectors() else { return };
    let cases = list(&v, "mrz_decode_invalid");
    assert!(cases.len() >= 20);
    for c in cases {
        let mrz = s(c, "mrz");
        if let Ok(m) = Mrz::parse(mrz) {
            assert!(
                !m.is_valid(),
                "{mrz} ({}) read as valid",
                s(c, "test_comment")
            );
            // The vector names the field it broke; the failed check says the same.
            let comment = s(c, "test_comment");
            let named = [
                "document-number",
                "date-of-birth",
                "date-of-expiry",
                "optional-data",
                "composite",
            ]
            .into_iter()
            .find(|n| comment.contains(n))
            .expect("the vector names a field");
            let failed: Vec<_> = m
                .failed_checks()
                .map(|c| c.name.replace('_', "-"))
                .collect();
            assert!(
                failed.iter().any(|f| f == named),
                "{mrz}: {comment}: {failed:?}"
            );
        }
    }
}

#[test]
fn key_information_is_what_bac_and_pace_derive_keys_from() {
    let Some(v) = vectors() else { return };
    for c in list(&v, "mrz_to_mrzi") {
        let mrz = s(c, "mrz");
        let m = Mrz::parse(mrz).unwrap_or_else(|e| panic!("{mrz}: {e}"));
        assert_eq!(
            m.key_information().as_deref(),
            Some(s(c, "expected_mrzi")),
            "{mrz}"
        );
    }
    for c in list(&v, "mrz_to_mrzi_invalid") {
        let mrz = s(c, "mrz");
        let info = Mrz::parse(mrz).ok().and_then(|m| m.key_information());
        assert_eq!(info, None, "{mrz}: {}", s(c, "desc"));
    }
}

#[test]
fn check_digits_match_the_vectors() {
    let Some(v) = vectors() else { return };
    for c in list(&v, "check_digit") {
        let want = s(c, "expected_check_digit").chars().next();
        assert_eq!(check_digit(s(c, "data")), want, "{c}");
    }
    for c in list(&v, "check_digit_errors_and_special") {
        let data = s(c, "data");
        let given = s(c, "check_digit").chars().next();
        let computed = check_digit(data);
        assert!(computed.is_none() || computed != given, "{c}");
    }
}

fn file(rel: &str) -> Vec<u8> {
    std::fs::read(shared().join("icao").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn lds_files_read_as_the_vectors_say() {
    if vectors().is_none() {
        return;
    }
    // The vectors file lists what each test asserted; EF.COM and DG1 here.
    let com = EfCom::parse(&file("vectors/ef/com_9303p10_example.bin")).expect("EF.COM");
    assert_eq!(
        (com.lds_version.as_str(), com.unicode_version.as_str()),
        ("0106", "040000")
    );
    assert_eq!(com.tags, [0x61, 0x75]);
    let com = EfCom::parse(&file("vectors/ef/com_modified_lds1234.bin")).expect("EF.COM");
    assert_eq!(
        (com.lds_version.as_str(), com.unicode_version.as_str()),
        ("1234", "654321")
    );
    for bad in ["com_err_line56", "com_err_line60", "com_err_line64"] {
        let b = file(&format!("vectors/negative/{bad}.bin"));
        assert!(EfCom::parse(&b).is_err(), "{bad}");
    }
    let dg1 = parse_dg1(&file("vectors/dg/dg1_td2_example.bin")).expect("DG1");
    assert_eq!(
        dg1.key_information().as_deref(),
        Some("D23145890774081221204159")
    );
    assert!(dg1.is_valid());
    let dg1 = parse_dg1(&file("vectors/dg/dg1_td3_no_optional_data.bin")).expect("DG1");
    assert_eq!(
        dg1.key_information().as_deref(),
        Some("DOCNUM<<<882010543401011")
    );
    assert!(dg1.is_valid(), "{:?}", dg1.checks);
    assert!(parse_dg1(&file("vectors/negative/dg1_td2_extra_byte.bin")).is_err());
    // The tiny malformed inputs, as hex in vectors.json, for the parsers here.
    let icao: Value = serde_json::from_slice(&file("vectors.json")).expect("vectors.json");
    let mut checked = 0;
    for c in list(&icao, "trivial_malformed_inputs") {
        let test = s(&c["source"], "test");
        let b = hex(s(c, "hex"));
        if test.starts_with("TestNewDG1") {
            assert!(parse_dg1(&b).is_err(), "{c}");
            checked += 1;
        } else if test.starts_with("TestNewCOM") {
            assert!(EfCom::parse(&b).is_err(), "{c}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked}");
}

#[test]
fn dg2_and_face_records_give_their_images() {
    if vectors().is_none() {
        return;
    }
    let jpeg = file("files/document/iso19794/test_data/ISO19794_Test1_Face.jpg");
    let faces = parse_dg2(&file("vectors/dg/dg2_iso19794_example.bin")).expect("DG2");
    assert_eq!(faces.len(), 1);
    assert_eq!(faces[0].format, ImageFormat::Jpeg);
    assert_eq!(faces[0].data, jpeg);
    let faces = ipseity_document::face::parse_iso19794_5(&file(
        "files/document/iso19794/test_data/ISO19794_Test1_Data.bin",
    ))
    .expect("19794-5");
    assert_eq!(faces[0].data, jpeg);
    // The same record with the JPEG's header broken is refused.
    assert!(ipseity_document::face::parse_iso19794_5(&file(
        "files/document/iso19794/test_data/ISO19794_Test2_Data_InvalidImage.bin"
    ))
    .is_err());

    let jp2 = file("files/document/test_data/ICAO_39794_5_AP_DG2_Face.jpg");
    for dg2 in [
        "ICAO_39794_5_AP_DG2_AllFields.dat",
        "ICAO_39794_5_AP_DG2_MandFields.dat",
    ] {
        let faces = parse_dg2(&file(&format!("files/document/test_data/{dg2}"))).expect(dg2);
        assert_eq!(faces.len(), 1, "{dg2}");
        assert_eq!(faces[0].format, ImageFormat::Jpeg2000, "{dg2}");
        assert_eq!(faces[0].data, jp2, "{dg2}");
    }
    let faces = ipseity_document::face::parse_iso39794_5(&file(
        "files/document/iso39794/test_data/ICAO_39794_5_AP_AllFields.dat",
    ))
    .expect("39794-5");
    assert_eq!(
        faces[0].data,
        file("files/document/iso39794/test_data/ICAO_39794_5_AP_Face.jpg")
    );
    assert!(ipseity_document::face::parse_iso39794_5(&file(
        "files/document/iso39794/test_data/ICAO_39794_5_AP_MandFields_InvalidImage.dat"
    ))
    .is_err());
    // The malformed DG2 inputs in vectors.json.
    let icao: Value = serde_json::from_slice(&file("vectors.json")).expect("vectors.json");
    let mut checked = 0;
    for c in list(&icao, "trivial_malformed_inputs") {
        if s(&c["source"], "test").starts_with("TestNewDG2") {
            assert!(parse_dg2(&hex(s(c, "hex"))).is_err(), "{c}");
            checked += 1;
        }
    }
    assert!(checked >= 3, "{checked}");
}
