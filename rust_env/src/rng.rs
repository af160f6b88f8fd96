//! SplitMix64: the per-env random stream. Bit-identical to `dspy_rl/envs/reference.py`.

/// Golden-ratio increment of SplitMix64.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// 2^-53: scales a 53-bit integer to a uniform float in [0, 1).
const TWO_POW_MINUS_53: f64 = 1.0 / 9_007_199_254_740_992.0;

/// SplitMix64 output function (a bijection on u64).
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Initial state of env `index`'s stream for `seed`: `mix(seed ^ mix(index + 1))`.
#[inline]
pub fn seed_stream(seed: u64, index: u64) -> u64 {
    mix64(seed ^ mix64(index.wrapping_add(1)))
}

/// Advance the stream and return the next 64 random bits.
#[inline]
pub fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    mix64(*state)
}

/// Uniform float in [0, 1) from the top 53 bits of the next output.
#[inline]
pub fn uniform(state: &mut u64) -> f64 {
    (next_u64(state) >> 11) as f64 * TWO_POW_MINUS_53
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_splitmix64() {
        // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut s = 0u64;
        assert_eq!(next_u64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next_u64(&mut s), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn streams_differ_by_seed_and_index() {
        assert_ne!(seed_stream(0, 0), seed_stream(0, 1));
        assert_ne!(seed_stream(0, 0), seed_stream(1, 0));
        assert_eq!(seed_stream(7, 3), seed_stream(7, 3));
    }

    #[test]
    fn uniform_in_unit_interval() {
        let mut s = seed_stream(42, 0);
        for _ in 0..10_000 {
            let u = uniform(&mut s);
            assert!((0.0..1.0).contains(&u));
        }
    }
}
