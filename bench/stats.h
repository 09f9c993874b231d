// stats.h -- the order statistics the benchmarks print (median, p99).
//
// Nearest rank, no interpolation: the value at index floor(p * n), clamped to the last, of
// the sorted samples. Every benchmark reports with it, so a median in one report means
// what it means in the next. Only bench/ includes this (it is the top layer).
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace udax {

// REQUIRES: !samples.empty(); 0 <= p <= 1. Takes a copy: sorting must not reorder the
// caller's samples (several percentiles of one run are asked for in turn).
inline double Percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return samples[std::min(samples.size() - 1, static_cast<size_t>(p * samples.size()))];
}

inline double Median(std::vector<double> samples) { return Percentile(std::move(samples), 0.5); }

}  // namespace udax
