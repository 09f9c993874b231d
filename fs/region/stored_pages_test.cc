// stored_pages_test.cc -- the page bitmap behind the small-write path of emulated regions.
#include "fs/region/stored_pages.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace udax {
namespace {

constexpr uint64_t kPage = StoredPages::kPage;

TEST(StoredPagesTest, MarksEveryTouchedPageAndClearsOnlyWholeOnes) {
  StoredPages pages;
  pages.Reset(100 * kPage + 10);  // a partial last page counts
  EXPECT_FALSE(pages.All(0, 1));
  EXPECT_TRUE(pages.All(5, 0));
  pages.Mark(kPage - 1, 2);  // touches pages 0 and 1
  EXPECT_TRUE(pages.All(0, 2 * kPage));
  EXPECT_FALSE(pages.All(0, 2 * kPage + 1));
  // Clear takes only pages wholly inside the range: page 0 stays, page 1 goes.
  pages.Clear(kPage / 2, kPage + kPage / 2);
  EXPECT_TRUE(pages.All(0, kPage));
  EXPECT_FALSE(pages.All(kPage, 1));
  // The last, partial page; nothing past the end is ever "all stored".
  pages.Mark(100 * kPage, 10);
  EXPECT_TRUE(pages.All(100 * kPage, 10));
  EXPECT_FALSE(pages.All(100 * kPage, kPage + 1));
  pages.Mark(100 * kPage + 5, 10 * kPage);  // clipped at the end, no overflow
  EXPECT_FALSE(pages.All(101 * kPage, 1));
}

TEST(StoredPagesTest, ThreadsMarkNeighbouringBitsWithoutLosingAny) {
  StoredPages pages;
  pages.Reset(4096 * kPage);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pages, t] {
      for (uint64_t p = t; p < 4096; p += 4) pages.Mark(p * kPage, 1);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(pages.All(0, 4096 * kPage));
}

}  // namespace
}  // namespace udax
