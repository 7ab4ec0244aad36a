// Our own seeded random numbers (never std::*_distribution, whose output is
// implementation-defined). Two kinds:
//  - Rng: a sequential stream (xoshiro256**) for init and shuffling, with savable state;
//  - counter_uniform(): a stateless hash of (key, counter) for dropout and MLM masks, so a mask can
//    be regenerated in the backward pass and depends neither on the thread count nor on how a
//    batch is packed or split (keys come from token_key()).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "tlm/host_device.h"  // the counter streams are also computed inside CUDA kernels

namespace tlm {

TLM_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A key for a stateless stream, mixed from a seed and up to three tags (step, layer, site).
TLM_HOST_DEVICE inline uint64_t mix_key(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  return splitmix64(splitmix64(splitmix64(seed ^ 0x7E3A1C55ull) ^ a) ^ (b * 0x632BE59BD9B4E019ull)) ^
         splitmix64(c + 0x12345ull);
}

// Uniform float in [0, 1) from (key, counter): 24 random bits.
TLM_HOST_DEVICE inline float counter_uniform(uint64_t key, uint64_t counter) {
  return static_cast<float>(splitmix64(key ^ (counter * 0xD1B54A32D192ED03ull)) >> 40) * 0x1.0p-24f;
}

// The identity of token `position` of the sequence with global index `sequence_id`: counter
// streams (dropout masks, MLM masks) are keyed by it, never by where a batch packs the token.
TLM_HOST_DEVICE inline uint64_t token_key(uint64_t sequence_id, uint64_t position) {
  return splitmix64(splitmix64(sequence_id ^ 0x51A7E5C0FFEEull) + position);
}

// The stream of one row (a token) under a site key: counter_uniform(row_stream(key, row), j).
TLM_HOST_DEVICE inline uint64_t row_stream(uint64_t key, uint64_t row_key) {
  return splitmix64(key ^ (row_key * 0x9E6C63D0676A9A99ull));
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& s : state_) s = splitmix64(x++);
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n), unbiased (Lemire's rejection method).
  uint64_t below(uint64_t n) {
    for (;;) {
      __extension__ typedef unsigned __int128 u128;
      const u128 m = static_cast<u128>(next_u64()) * n;
      const uint64_t low = static_cast<uint64_t>(m);
      if (low >= n || low >= (-n) % n) return static_cast<uint64_t>(m >> 64);
    }
  }

  // Standard normal by Box-Muller (one value per call; the pair's twin is discarded
  // so the stream position depends only on the number of calls).
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  const std::array<uint64_t, 4>& state() const { return state_; }
  void set_state(const std::array<uint64_t, 4>& s) { state_ = s; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> state_{};
};

}  // namespace tlm
