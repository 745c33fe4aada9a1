//! Fuzz target `redirect_uri`: see `latchkey::fuzzing::redirect_uri` and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = latchkey::fuzzing::redirect_uri(data) {
        panic!("redirect_uri: {violation}");
    }
});
