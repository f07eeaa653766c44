//! The fuzz harness of the fjall decoders (`fsmeta::backend::fjall::fuzzing`,
//! feature `fuzzing`), run as an ordinary test so it cannot rot between
//! fuzzing campaigns: mutations of valid encodings (byte flips, truncations,
//! insertions, splices) and plain random bytes, through the same property
//! checks as `fuzz/fuzz_targets/`. The real campaign is libFuzzer:
//! `cd fuzz && cargo +nightly fuzz run fjall_values -- -runs=1000000`
//! (see docs/reliability.md).
//!
//! `FSMETA_FUZZ_ITERATIONS` sets the inputs per decoder family (default
//! 100,000). `FSMETA_FUZZ_WRITE_CORPUS=DIR` also writes the valid seeds to
//! `DIR/fjall_values/` and `DIR/fjall_keys/`, a starting corpus for libFuzzer.

use fsmeta::backend::fjall::fuzzing;

fn mutate(rng: &mut fastrand::Rng, seed: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.usize(1..=4) {
        match rng.u8(0..6) {
            // Flip a byte (never the selector, so the decoder stays the seed's).
            0 if data.len() > 1 => {
                let at = rng.usize(1..data.len());
                data[at] ^= 1 << rng.u8(0..8);
            }
            // Set a byte to an interesting value.
            1 if data.len() > 1 => {
                let at = rng.usize(1..data.len());
                data[at] = [0, 1, 0x7f, 0x80, 0xff][rng.usize(0..5)];
            }
            // Truncate.
            2 if data.len() > 1 => data.truncate(rng.usize(1..data.len())),
            // Insert random bytes.
            3 => {
                let at = rng.usize(1..=data.len().max(1));
                let at = at.min(data.len());
                for _ in 0..rng.usize(1..=8) {
                    data.insert(at, rng.u8(..));
                }
            }
            // Splice the tail of another seed.
            4 => {
                let other = &seeds[rng.usize(0..seeds.len())];
                let from = rng.usize(0..other.len());
                data.extend_from_slice(&other[from..]);
            }
            // Change the selector: another decoder reads these bytes.
            _ => {
                if let Some(first) = data.first_mut() {
                    *first = rng.u8(..);
                }
            }
        }
    }
    data
}

fn run(name: &str, check: fn(&[u8]), seeds: &[Vec<u8>]) {
    let iterations: usize = std::env::var("FSMETA_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if let Ok(dir) = std::env::var("FSMETA_FUZZ_WRITE_CORPUS") {
        let dir = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).expect("write seed");
        }
    }
    let mut rng = fastrand::Rng::new();
    let seed = rng.get_seed();
    for seed in seeds {
        check(seed);
    }
    for i in 0..iterations {
        let data = if i % 4 == 0 {
            (0..rng.usize(0..48)).map(|_| rng.u8(..)).collect()
        } else {
            let start = rng.usize(0..seeds.len());
            mutate(&mut rng, &seeds[start], seeds)
        };
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            eprintln!("{name}: input {data:?} broke a property (rng seed {seed})");
            std::panic::resume_unwind(panic);
        }
    }
    eprintln!("{name}: {iterations} inputs, every property held");
}

#[test]
fn value_decoders_hold_their_properties() {
    let (values, _) = fuzzing::seeds();
    run("fjall_values", fuzzing::values, &values);
}

#[test]
fn key_decoders_hold_their_properties() {
    let (_, keys) = fuzzing::seeds();
    run("fjall_keys", fuzzing::keys, &keys);
}
