//! Arbitrary bytes into every fjall key decoder (the first byte picks one);
//! the properties are in `fsmeta::backend::fjall::fuzzing::keys`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fsmeta::backend::fjall::fuzzing::keys(data);
});
