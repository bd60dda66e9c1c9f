// Reproducible pseudo-random numbers for synthetic frames: uniform and standard normal deviates
// that are the same on every platform and standard library (<random>'s distributions are not).
//
//   #include "core/random/gaussian.h"
//
//   calibd::random::Gaussian rng(/*seed=*/7);
//   double noise = 5.0 * rng.Next();        // N(0, 5²)
//   double u = rng.Uniform();               // [0, 1)
//   // A value tied to a position, not to the order of calls (e.g. a fixed pixel pattern):
//   double p = calibd::random::HashUniform(/*seed=*/7, /*a=*/x, /*b=*/y);
//
// The stream is splitmix64 (Steele, Lea & Flood 2014) with increment 0x9E3779B97F4A7C15 and
// initial state seed·0x9E3779B97F4A7C15 + 1; normal deviates use Marsaglia's polar method, two
// per accepted pair. Not for cryptography.
//
// Thread safety: a Gaussian is a small value type with mutable state — one per thread (or
// external locking). Mix64 and HashUniform are pure functions.
#ifndef CALIBD_CORE_RANDOM_GAUSSIAN_H_
#define CALIBD_CORE_RANDOM_GAUSSIAN_H_

#include <cstdint>

namespace calibd::random {

inline constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;

// splitmix64's output function of one step from state z: adds the increment, then finalises.
constexpr uint64_t Mix64(uint64_t z) {
  z += kGoldenGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The top 53 bits of `bits` as a double in [0, 1).
constexpr double ToUnit(uint64_t bits) { return (bits >> 11) * (1.0 / 9007199254740992.0); }

// A uniform [0, 1) value that depends only on (seed, a, b): a counter-based generator for
// patterns indexed by position.
constexpr double HashUniform(uint64_t seed, uint64_t a, uint64_t b) {
  return ToUnit(Mix64(seed ^ Mix64(a * 0x100000001B3ull + b)));
}

class Gaussian {
 public:
  explicit Gaussian(uint64_t seed) : state_(seed * kGoldenGamma + 1) {}

  // The next standard normal deviate.
  double Next();
  // The next uniform deviate in [0, 1) (shares the stream with Next()).
  double Uniform() { return ToUnit(Bits()); }
  // The next raw 64-bit value of the stream.
  uint64_t Bits() {
    const uint64_t z = Mix64(state_);
    state_ += kGoldenGamma;
    return z;
  }

 private:
  uint64_t state_;
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace calibd::random

#endif  // CALIBD_CORE_RANDOM_GAUSSIAN_H_
