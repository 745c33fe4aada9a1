//! Fuzz target `jwt`: see `latchkey::fuzzing::jwt` and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = latchkey::fuzzing::jwt(data) {
        panic!("jwt: {violation}");
    }
});
