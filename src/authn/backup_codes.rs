//! Single-use backup codes for when the authenticator is lost: generation and the
//! canonical form of what the user types. Pure apart from OS randomness; the caller
//! stores a keyed hash of each canonical code, never the code.

use ring::rand::{SecureRandom, SystemRandom};

/// Codes issued at a time.
pub const COUNT: usize = 10;
/// Alphabet characters in a code: 10 x 5 bits = 50 bits of entropy.
pub const CODE_LEN: usize = 10;
/// The alphabet: digits 2-9 and lower-case letters except 'l' and 'o', 32 characters with
/// no look-alikes ('0', '1', 'l', 'o' are all left out). Being 32 long, each character
/// takes exactly 5 random bits.
pub const ALPHABET: &[u8; 32] = b"23456789abcdefghijkmnpqrstuvwxyz";

/// Display group size: codes are shown as `xxxxx-xxxxx`.
const GROUP: usize = 5;
/// Longest input `normalize` looks at; anything longer cannot be a code.
const MAX_INPUT_LEN: usize = 64;

/// Why backup codes could not be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BackupCodeError {
    /// The operating system's random number generator failed (or kept repeating itself).
    #[error("the system random number generator failed")]
    Random,
}

/// [`COUNT`] distinct new codes, each shown as `xxxxx-xxxxx`.
pub fn generate() -> Result<Vec<String>, BackupCodeError> {
    let rng = SystemRandom::new();
    let mut codes: Vec<String> = Vec::with_capacity(COUNT);
    // A duplicate has probability about 2^-44; redraw it, but a generator that keeps
    // repeating itself is broken, so give up rather than loop.
    for _ in 0..COUNT * 2 {
        let code = one(&rng)?;
        if !codes.contains(&code) {
            codes.push(code);
        }
        if codes.len() == COUNT {
            return Ok(codes);
        }
    }
    Err(BackupCodeError::Random)
}

/// One code: each random byte's low 5 bits pick a character; 256 is a multiple of 32, so
/// every character is equally likely.
fn one(rng: &SystemRandom) -> Result<String, BackupCodeError> {
    let mut bytes = [0u8; CODE_LEN];
    rng.fill(&mut bytes).map_err(|_| BackupCodeError::Random)?;
    let mut code = String::with_capacity(CODE_LEN + 1);
    for (i, byte) in bytes.iter().enumerate() {
        if i == GROUP {
            code.push('-');
        }
        code.push(char::from(ALPHABET[usize::from(byte & 0x1f)]));
    }
    Ok(code)
}

/// What the user typed -> the canonical 10-character form the caller hashes: letters
/// lower-cased, dashes and whitespace anywhere removed. No other character is mapped (an
/// 'o' is not read as '0' or an 'l' as '1': neither side of those pairs is in the
/// alphabet). `None` unless exactly [`CODE_LEN`] alphabet characters remain.
pub fn normalize(input: &str) -> Option<String> {
    if input.len() > MAX_INPUT_LEN {
        return None;
    }
    let mut code = String::with_capacity(CODE_LEN);
    for c in input.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let c = c.to_ascii_lowercase();
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || code.len() == CODE_LEN {
            return None;
        }
        code.push(c);
    }
    (code.len() == CODE_LEN).then_some(code)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn alphabet_is_32_distinct_unambiguous_characters() {
        let set: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(set.len(), 32);
        for confusable in b"01lo" {
            assert!(!set.contains(confusable), "{}", char::from(*confusable));
        }
        assert!(ALPHABET
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }

    #[test]
    fn ten_distinct_codes_in_display_format() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(&code[5..6], "-", "{code}");
            let without_dash = code.replace('-', "");
            assert!(
                without_dash.bytes().all(|b| ALPHABET.contains(&b)),
                "{code}"
            );
        }
    }

    #[test]
    fn at_least_50_bits_each() {
        let bits = (ALPHABET.len() as f64).log2() * CODE_LEN as f64;
        assert!(bits >= 50.0);
    }

    #[test]
    fn generated_codes_normalize_to_themselves_without_the_dash() {
        for code in generate().unwrap() {
            assert_eq!(normalize(&code), Some(code.replace('-', "")));
        }
    }

    #[test]
    fn normalize_accepts_case_spaces_and_dashes() {
        let canonical = Some("abcde23456".to_owned());
        for typed in [
            "abcde-23456",
            "abcde23456",
            "ABCDE-23456",
            "AbCdE 23456",
            "  abcde - 23456\n",
            "a-b-c-d-e-2-3-4-5-6",
            "ab cde2 3456",
        ] {
            assert_eq!(normalize(typed), canonical, "{typed:?}");
        }
        assert_eq!(normalize("IJKMN-PQRST"), Some("ijkmnpqrst".to_owned()));
    }

    #[test]
    fn normalize_rejects_bad_input() {
        let long = "a".repeat(100_000);
        for typed in [
            "",
            "-----",
            "abcde-2345",
            "abcde-234567",
            "abcde-2345o",
            "abcde-23450",
            "abcde-23451",
            "abcde-2345l",
            "abcde-2345L",
            "abcde_23456",
            "abcdé-23456",
            "ａbcde-23456",
            "abcde\u{0}23456",
            long.as_str(),
        ] {
            assert_eq!(normalize(typed), None, "{typed:?}");
        }
    }

    #[test]
    fn every_alphabet_character_appears() {
        let mut seen = HashSet::new();
        let mut counts = [0usize; 32];
        // 50 rounds x 10 codes x 10 characters = 5,000 characters, ~156 per character.
        for _ in 0..50 {
            for code in generate().unwrap() {
                for b in code.bytes().filter(|&b| b != b'-') {
                    seen.insert(b);
                    let index = ALPHABET.iter().position(|&a| a == b).unwrap();
                    counts[index] += 1;
                }
            }
        }
        assert_eq!(seen.len(), 32);
        // Far below/above the mean of ~156 would mean a biased mapping (not a proof).
        assert!(
            counts.iter().all(|&n| (60..=280).contains(&n)),
            "{counts:?}"
        );
    }
}
