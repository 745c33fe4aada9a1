//! Fuzz target `token`: see `latchkey::fuzzing::token` and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = latchkey::fuzzing::token(data) {
        panic!("token: {violation}");
    }
});
