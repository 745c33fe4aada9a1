//! Fuzz target `authorize`: see `latchkey::fuzzing::authorize` and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = latchkey::fuzzing::authorize(data) {
        panic!("authorize: {violation}");
    }
});
