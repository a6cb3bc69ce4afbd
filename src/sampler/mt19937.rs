//! The 32-bit Mersenne Twister (`std::mt19937`) and libstdc++'s way of turning it into a `double`
//! in `[0, 1)`.
//!
//! llama.cpp's `dist` sampler owns a `std::mt19937` seeded with the user's seed and draws one
//! `std::uniform_real_distribution<double>(0, 1)` value per sampled token. Reproducing both
//! exactly means `--seed N` walks the same random stream here as in llama.cpp, so where the
//! candidate lists agree, the same seed picks the same tokens.

/// Degree of recurrence (words of state).
const N: usize = 624;
/// Middle word offset.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// `std::mt19937`: same seeding (`seed(uint32_t)`) and the same output sequence.
#[derive(Clone)]
pub(crate) struct Mt19937 {
    state: [u32; N],
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    /// The 2.5 KB state is noise in a `Debug` dump of the sampler.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mt19937")
    }
}

impl Mt19937 {
    /// Mirrors `std::mersenne_twister_engine::seed(result_type)`.
    pub(crate) fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            // `i < 624`, so the cast is lossless.
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: N }
    }

    /// Regenerates the whole state block (the "twist").
    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % N] & LOWER_MASK);
            let mut next = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= MATRIX_A;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// Next 32-bit output (`operator()`), tempered.
    pub(crate) fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `std::uniform_real_distribution<double>(0.0, 1.0)(rng)` as libstdc++ computes it:
    /// `std::generate_canonical<double, 53>` takes two 32-bit draws, low word first, sums them
    /// in `double` as `g0 + g1 * 2^32`, divides by `2^64`, and clamps a result that rounded up
    /// to 1.0 down to the largest double below 1. The distribution's `a + (b - a) * x` is then
    /// the identity for `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        const R: f64 = 4_294_967_296.0; // 2^32
        let g0 = f64::from(self.next_u32());
        let g1 = f64::from(self.next_u32());
        let sum = g0 + g1 * R;
        let x = sum / (R * R);
        if x >= 1.0 {
            // nextafter(1.0, 0.0)
            1.0 - f64::EPSILON / 2.0
        } else {
            x
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mt19937;

    /// The C++ standard ([rand.predef]) requires the 10000th output of a default-constructed
    /// `mt19937` (seed 5489) to be 4123659995.
    #[test]
    fn mt19937_matches_the_standard() {
        let mut rng = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = rng.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    /// First outputs of `std::mt19937(5489)`, well known from the reference implementation.
    #[test]
    fn mt19937_first_outputs() {
        let mut rng = Mt19937::new(5489);
        let first: Vec<u32> = (0..3).map(|_| rng.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
    }

    /// `std::uniform_real_distribution<double>(0, 1)` over `std::mt19937(42)`, printed with
    /// `%.17g` by a program built with g++ / libstdc++ (here in Rust's shortest round-trip form).
    #[test]
    fn uniform_f64_matches_libstdcxx() {
        let mut rng = Mt19937::new(42);
        let expect = [
            0.796_542_984_287_846,
            0.183_434_787_893_368_48,
            0.779_690_997_612_661_3,
            0.596_850_161_580_056_5,
            0.445_832_757_548_433_43,
        ];
        for e in expect {
            assert_eq!(rng.next_f64(), e);
        }
    }

    #[test]
    fn uniform_f64_is_in_unit_interval_and_uses_two_draws() {
        let mut a = Mt19937::new(42);
        let mut b = Mt19937::new(42);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert!((0.0..1.0).contains(&x));
            let g0 = f64::from(b.next_u32());
            let g1 = f64::from(b.next_u32());
            let expect = (g0 + g1 * 4_294_967_296.0) / 18_446_744_073_709_551_616.0;
            assert_eq!(x, expect.min(1.0 - f64::EPSILON / 2.0));
        }
    }
}
