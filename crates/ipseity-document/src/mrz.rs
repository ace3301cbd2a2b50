//! ICAO 9303 machine-readable zones (parts 4 to 7).
//!
//! [`Mrz::parse`] takes the zone as printed: its lines separated by line
//! breaks, or concatenated (90, 72 or 88 characters). Structure errors (a
//! wrong length, a character outside `A-Z0-9<`, a malformed name or document
//! number) are an [`MrzError`]; a wrong check digit is not: the zone is read
//! and every check is reported by name in [`Mrz::checks`], so a desk operator
//! sees which field was misread or altered.

use serde::Serialize;

/// The document formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    /// Three lines of 30: identity cards (part 5).
    #[serde(rename = "TD1")]
    Td1,
    /// Two lines of 36: identity cards and other documents (part 6).
    #[serde(rename = "TD2")]
    Td2,
    /// Two lines of 44: passports (part 4).
    #[serde(rename = "TD3")]
    Td3,
    /// Two lines of 44 on a visa (part 7).
    #[serde(rename = "MRV-A")]
    MrvA,
    /// Two lines of 36 on a visa (part 7).
    #[serde(rename = "MRV-B")]
    MrvB,
}

/// Why a text is not a machine-readable zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MrzError {
    /// The lines are not 3 x 30, 2 x 36 or 2 x 44 characters.
    #[error("not a machine-readable zone: {0}")]
    Length(String),
    /// A character outside `A-Z`, `0-9` and `<`.
    #[error("character {found:?} at line {line}, column {column} is not allowed in a machine-readable zone (A-Z, 0-9, <)")]
    Character {
        /// The character.
        found: char,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A field does not follow its format.
    #[error("{field}: {why}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

impl ipseity_core::Classified for MrzError {
    fn kind(&self) -> ipseity_core::ErrorKind {
        ipseity_core::ErrorKind::Input
    }

    fn code(&self) -> &'static str {
        "malformed_mrz"
    }
}

/// One check digit and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `document_number`, `date_of_birth`, `date_of_expiry`, `optional_data` or `composite`.
    pub name: &'static str,
    /// The digit printed.
    pub printed: char,
    /// The digit computed from the covered characters.
    pub computed: char,
    /// Whether they agree.
    pub ok: bool,
}

/// A machine-readable zone, read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mrz {
    /// The layout.
    pub format: Format,
    /// The lines as given.
    pub lines: Vec<String>,
    /// Document code (`P`, `I`, `ID`, `V`, ...), fillers removed.
    pub document_code: String,
    /// Issuing state or organisation (`UTO`, `D`, ...), fillers removed.
    pub issuing_state: String,
    /// The primary identifier (surname), `<` between words read as spaces.
    pub primary_identifier: String,
    /// The secondary identifier (given names), as above; empty when absent.
    pub secondary_identifier: String,
    /// The document number, fillers removed, with an extended number's
    /// continuation (TD1, TD2) joined.
    pub document_number: String,
    /// Nationality, fillers removed.
    pub nationality: String,
    /// Date of birth, `YYMMDD` as printed (`<` marks an unknown part).
    pub date_of_birth: String,
    /// `M`, `F`, or `<` (unspecified; some states print `X`).
    pub sex: String,
    /// Date of expiry, `YYMMDD`.
    pub date_of_expiry: String,
    /// Optional data (personal number on TD3), fillers removed.
    pub optional_data: String,
    /// TD1's second optional data field, fillers removed.
    pub optional_data_2: String,
    /// Every check digit of the format, in print order.
    pub checks: Vec<Check>,
    /// The document number as BAC and PACE use it, with its check digit:
    /// the printed nine characters (fillers kept) or the whole extended number.
    #[serde(skip)]
    number_with_check: String,
}

/// A character's value in the 7-3-1 check-digit scheme; `None` outside `A-Z0-9<`.
fn value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'<' => Some(0),
        _ => None,
    }
}

/// ICAO 9303 part 3's check digit of `data` (weights 7, 3, 1 repeating,
/// modulo 10); `None` when `data` holds a character outside `A-Z0-9<`.
pub fn check_digit(data: &str) -> Option<char> {
    let mut sum = 0u32;
    for (i, c) in data.bytes().enumerate() {
        sum += value(c)? * [7, 3, 1][i % 3];
    }
    char::from_digit(sum % 10, 10)
}

fn check(name: &'static str, data: &str, printed: u8) -> Check {
    let computed = check_digit(data).unwrap_or('?');
    Check {
        name,
        printed: char::from(printed),
        computed,
        ok: char::from(printed) == computed,
    }
}

fn strip(s: &str) -> String {
    s.trim_end_matches('<').replace('<', " ").trim().to_owned()
}

/// Splits the name field into primary and secondary identifiers.
fn name(field: &str) -> Result<(String, String), MrzError> {
    let t = field.trim_end_matches('<');
    let parts: Vec<&str> = t.split("<<").collect();
    let bad = |why: &str| MrzError::Field {
        field: "name",
        why: why.to_owned(),
    };
    if t.is_empty() || parts[0].is_empty() {
        return Err(bad("no primary identifier"));
    }
    if parts.len() > 2 {
        return Err(bad(
            "more than one `<<` separator: only the primary and the secondary identifier are allowed",
        ));
    }
    let words = |s: &str| {
        s.split('<')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok((
        words(parts[0]),
        parts.get(1).map_or(String::new(), |s| words(s)),
    ))
}

fn date(field: &'static str, s: &str) -> Result<String, MrzError> {
    let b = s.as_bytes();
    let ok = b.len() == 6 && b.iter().all(|&c| c.is_ascii_digit() || c == b'<');
    let part = |i: usize| -> Option<u32> {
        let p = &s[i..i + 2];
        p.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse().ok())
            .flatten()
    };
    let month_ok = part(2).is_none_or(|m| (1..=12).contains(&m));
    let day_ok = part(4).is_none_or(|d| (1..=31).contains(&d));
    if !ok || !month_ok || !day_ok {
        return Err(MrzError::Field {
            field,
            why: format!("{s:?} is not a date YYMMDD"),
        });
    }
    Ok(s.to_owned())
}

fn sex(s: &str) -> Result<String, MrzError> {
    match s {
        "M" | "F" | "<" | "X" => Ok(s.to_owned()),
        _ => Err(MrzError::Field {
            field: "sex",
            why: format!("{s:?} is not M, F, X or <"),
        }),
    }
}

/// A document number of nine printed characters and its check digit, or,
/// when the check digit position holds `<`, an extended number continued at
/// the start of `optional`: more characters, then the check digit, then `<`.
/// Returns the number, its check, the `number + check digit` string, and what
/// is left of the optional field.
fn document_number(
    printed: &str,
    cd: u8,
    optional: &str,
) -> Result<(String, Check, String, String), MrzError> {
    if cd != b'<' {
        let c = check("document_number", printed, cd);
        let with = format!("{printed}{}", char::from(cd));
        return Ok((strip(printed), c, with, optional.to_owned()));
    }
    let bad = || {
        MrzError::Field {
        field: "document_number",
        why: "an extended document number needs at least one more character and its check digit before the next `<`".into(),
    }
    };
    let end = optional.find('<').unwrap_or(optional.len());
    if end < 2 || printed.contains('<') {
        return Err(bad());
    }
    let (rest, digit) = optional[..end].split_at(end - 1);
    let number = format!("{printed}{rest}");
    let c = check("document_number", &number, digit.as_bytes()[0]);
    let with = format!("{number}{digit}");
    Ok((number, c, with, optional[end..].to_owned()))
}

impl Mrz {
    /// Reads a machine-readable zone.
    pub fn parse(text: &str) -> Result<Self, MrzError> {
        // At most three lines of 44 and their line breaks are worth reading.
        if text.len() > 512 {
            return Err(MrzError::Length(format!(
                "{} bytes; a zone has at most 132 characters",
                text.len()
            )));
        }
        let rows: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let joined: String = rows.concat();
        for (li, l) in rows.iter().enumerate() {
            if let Some((ci, c)) = l
                .char_indices()
                .find(|&(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '<'))
            {
                return Err(MrzError::Character {
                    found: c,
                    line: li + 1,
                    column: l[..ci].chars().count() + 1,
                });
            }
        }
        let widths: Vec<usize> = rows.iter().map(|l| l.len()).collect();
        let (width, count) = match (joined.len(), widths.as_slice()) {
            (90, [90] | [30, 30, 30]) => (30, 3),
            (72, [72] | [36, 36]) => (36, 2),
            (88, [88] | [44, 44]) => (44, 2),
            _ => {
                return Err(MrzError::Length(format!(
                    "lines of {widths:?} characters; expected 3 x 30 (TD1), 2 x 36 (TD2, MRV-B) or 2 x 44 (TD3, MRV-A)"
                )))
            }
        };
        let lines: Vec<String> = (0..count)
            .map(|i| joined[i * width..(i + 1) * width].to_owned())
            .collect();
        let visa = lines[0].starts_with('V');
        match (width, visa) {
            (30, _) => Self::td1(lines),
            (36, false) => Self::two_line(lines, Format::Td2),
            (36, true) => Self::two_line(lines, Format::MrvB),
            (44, false) => Self::two_line(lines, Format::Td3),
            (_, _) => Self::two_line(lines, Format::MrvA),
        }
    }

    fn td1(lines: Vec<String>) -> Result<Self, MrzError> {
        let (l1, l2, l3) = (lines[0].as_str(), lines[1].as_str(), lines[2].as_str());
        let (number, number_check, number_with_check, optional) =
            document_number(&l1[5..14], l1.as_bytes()[14], &l1[15..30])?;
        let (primary, secondary) = name(l3)?;
        let checks = vec![
            number_check,
            check("date_of_birth", &l2[0..6], l2.as_bytes()[6]),
            check("date_of_expiry", &l2[8..14], l2.as_bytes()[14]),
            check(
                "composite",
                &format!("{}{}{}{}", &l1[5..30], &l2[0..7], &l2[8..15], &l2[18..29]),
                l2.as_bytes()[29],
            ),
        ];
        Ok(Self {
            format: Format::Td1,
            document_code: strip(&l1[0..2]),
            issuing_state: strip(&l1[2..5]),
            primary_identifier: primary,
            secondary_identifier: secondary,
            document_number: number,
            nationality: strip(&l2[15..18]),
            date_of_birth: date("date_of_birth", &l2[0..6])?,
            sex: sex(&l2[7..8])?,
            date_of_expiry: date("date_of_expiry", &l2[8..14])?,
            optional_data: strip(&optional),
            optional_data_2: strip(&l2[18..29]),
            checks,
            number_with_check,
            lines,
        })
    }

    /// TD2, TD3 and the visas: one name line, one data line.
    fn two_line(lines: Vec<String>, format: Format) -> Result<Self, MrzError> {
        let (l1, l2) = (lines[0].as_str(), lines[1].as_str());
        let w = l2.len();
        let b = l2.as_bytes();
        // Optional data runs to the end, less the composite (TD2, TD3) and
        // the personal number's own check digit (TD3).
        let opt_end = match format {
            Format::Td3 => w - 2,
            Format::Td2 => w - 1,
            _ => w,
        };
        let extended_allowed = format == Format::Td2;
        if b[9] == b'<' && !extended_allowed {
            return Err(MrzError::Field {
                field: "document_number",
                why: "the check digit is `<`: only TD1 and TD2 documents carry extended numbers"
                    .into(),
            });
        }
        let (number, number_check, number_with_check, optional) =
            document_number(&l2[0..9], b[9], &l2[28..opt_end])?;
        let (primary, secondary) = name(&l1[5..])?;
        let mut checks = vec![
            number_check,
            check("date_of_birth", &l2[13..19], b[19]),
            check("date_of_expiry", &l2[21..27], b[27]),
        ];
        if format == Format::Td3 {
            let personal = &l2[28..42];
            // An unused personal number may carry `<` as its check digit.
            if !(personal.bytes().all(|c| c == b'<') && b[42] == b'<') {
                checks.push(check("optional_data", personal, b[42]));
            }
        }
        if matches!(format, Format::Td2 | Format::Td3) {
            checks.push(check(
                "composite",
                &format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..w - 1]),
                b[w - 1],
            ));
        }
        Ok(Self {
            format,
            document_code: strip(&l1[0..2]),
            issuing_state: strip(&l1[2..5]),
            primary_identifier: primary,
            secondary_identifier: secondary,
            document_number: number,
            nationality: strip(&l2[10..13]),
            date_of_birth: date("date_of_birth", &l2[13..19])?,
            sex: sex(&l2[20..21])?,
            date_of_expiry: date("date_of_expiry", &l2[21..27])?,
            optional_data: strip(&optional),
            optional_data_2: String::new(),
            checks,
            number_with_check,
            lines,
        })
    }

    /// Whether every check digit agrees.
    pub fn is_valid(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks that failed.
    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// The "MRZ information" BAC and PACE derive their keys from: document
    /// number, date of birth and date of expiry, each with its check digit.
    /// `None` when one of those three checks fails (a misread zone would
    /// derive the wrong keys).
    pub fn key_information(&self) -> Option<String> {
        let ok = |n: &str| self.checks.iter().any(|c| c.name == n && c.ok);
        if !(ok("document_number") && ok("date_of_birth") && ok("date_of_expiry")) {
            return None;
        }
        let cd = |n: &str| {
            self.checks
                .iter()
                .find(|c| c.name == n)
                .map_or('<', |c| c.printed)
        };
        Some(format!(
            "{}{}{}{}{}",
            self.number_with_check,
            self.date_of_birth,
            cd("date_of_birth"),
            self.date_of_expiry,
            cd("date_of_expiry")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ICAO 9303 part 4's specimen passport.
    const TD3: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10";

    #[test]
    fn check_digits_follow_the_7_3_1_scheme() {
        assert_eq!(check_digit("L898902C3"), Some('6'));
        assert_eq!(check_digit("740812"), Some('2'));
        assert_eq!(check_digit("ZE184226B<<<<<"), Some('1'));
        assert_eq!(check_digit("123456789"), Some('7'));
        assert_eq!(check_digit("1234*6789"), None);
        assert_eq!(check_digit(""), Some('0'));
    }

    #[test]
    fn a_passport_reads_field_by_field() {
        let m = Mrz::parse(TD3).unwrap();
        assert_eq!(m.format, Format::Td3);
        assert_eq!(m.document_code, "P");
        assert_eq!(m.primary_identifier, "ERIKSSON");
        assert_eq!(m.secondary_identifier, "ANNA MARIA");
        assert_eq!(m.document_number, "L898902C3");
        assert_eq!(m.optional_data, "ZE184226B");
        assert!(m.is_valid(), "{:?}", m.checks);
        let names: Vec<_> = m.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "document_number",
                "date_of_birth",
                "date_of_expiry",
                "optional_data",
                "composite"
            ]
        );
        assert_eq!(
            m.key_information().as_deref(),
            Some("L898902C3674081221204159")
        );
        // The same zone on one line, with stray spaces and a CRLF.
        assert_eq!(Mrz::parse(&TD3.replace('\n', "\r\n  ")).unwrap(), m);
    }

    #[test]
    fn a_wrong_digit_is_reported_by_name() {
        let m = Mrz::parse(&TD3.replace("7408122F", "7408123F")).unwrap();
        let failed: Vec<_> = m.failed_checks().map(|c| c.name).collect();
        assert_eq!(failed, ["date_of_birth", "composite"]);
        assert!(!m.is_valid());
        assert_eq!(m.key_information(), None);
    }

    #[test]
    fn visas_have_no_composite() {
        // MRV-A and MRV-B after part 7's specimen, check digits computed
        // independently: number L8988901C -> 4, birth 400907 -> 8, expiry 961210 -> 9.
        let a = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<<<<";
        let m = Mrz::parse(a).unwrap();
        assert_eq!(m.format, Format::MrvA);
        assert_eq!(m.nationality, "XXX");
        assert_eq!(m.checks.len(), 3);
        assert!(m.is_valid(), "{:?}", m.checks);
        let b = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<";
        let m = Mrz::parse(b).unwrap();
        assert_eq!(m.format, Format::MrvB);
        assert!(m.is_valid(), "{:?}", m.checks);
    }

    #[test]
    fn structure_errors_are_errors() {
        assert!(matches!(Mrz::parse("BADMRZ"), Err(MrzError::Length(_))));
        assert!(Mrz::parse("BadMrz").is_err());
        assert!(matches!(
            Mrz::parse(&TD3.replace("ANNA", "anna")),
            Err(MrzError::Character {
                found: 'a',
                line: 1,
                ..
            })
        ));
        assert!(matches!(
            Mrz::parse(&TD3.replace("ANNA<MARIA<<", "ANNA<<MARIA<")),
            Err(MrzError::Field { field: "name", .. })
        ));
        assert!(matches!(
            Mrz::parse(&TD3.replace("7408122F", "7413122F")),
            Err(MrzError::Field {
                field: "date_of_birth",
                ..
            })
        ));
        assert!(Mrz::parse(&"<".repeat(600)).is_err());
        // Lines of the right total but the wrong shape.
        assert!(Mrz::parse(&format!("{}\n{}", &TD3[..40], &TD3[40..])).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_text_panics(s in "[A-Z0-9<\n]{0,140}") {
            let _ = Mrz::parse(&s);
        }

        #[test]
        fn no_zone_shaped_text_panics(l in proptest::collection::vec("[A-Z0-9<]{30}", 3)) {
            if let Ok(m) = Mrz::parse(&l.join("\n")) {
                let _ = m.key_information();
            }
        }
    }
}
