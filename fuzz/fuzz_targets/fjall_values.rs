//! Arbitrary bytes into every fjall value decoder (the first byte picks
//! one); the properties are in `fsmeta::backend::fjall::fuzzing::values`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fsmeta::backend::fjall::fuzzing::values(data);
});
