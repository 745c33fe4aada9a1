//! Fuzz target `basic`: see `latchkey::fuzzing::basic` and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = latchkey::fuzzing::basic(data) {
        panic!("basic: {violation}");
    }
});
