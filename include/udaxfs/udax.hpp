// udax.hpp -- a C++ face for libudax (udax.h): an owning direct map and a subscription.
//
//   auto map = udax::DirectMap::Map(fd, 0, len, UDAX_PROT_READ | UDAX_PROT_WRITE);
//   if (!map) { /* map.error() is the errno: fall back to mmap(2) */ }
//   std::memcpy(map->data(), src, len);
//   map->Persist();
// The map is given back when the object goes away.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "udaxfs/udax.h"

namespace udax {

class DirectMap {
 public:
  // The map, or an empty pointer with the errno in *error.
  static std::unique_ptr<DirectMap> Map(int fd, off_t offset, size_t length, int prot,
                                        int* error = nullptr) {
    void* addr = nullptr;
    const int rc = udax_map(fd, offset, length, prot, &addr);
    if (error != nullptr) *error = -rc;
    if (rc != 0) return nullptr;
    return std::unique_ptr<DirectMap>(new DirectMap(addr, length));
  }
  ~DirectMap() { udax_unmap(addr_); }
  DirectMap(const DirectMap&) = delete;
  DirectMap& operator=(const DirectMap&) = delete;

  char* data() const { return static_cast<char*>(addr_); }
  size_t size() const { return length_; }
  // Durable: all of it, or [off, off+n).
  int Persist() const { return udax_persist(addr_, length_); }
  int Persist(size_t off, size_t n) const { return udax_persist(data() + off, n); }
  // False once the daemon took the map back (touching it raises SIGBUS).
  bool live() const { return udax_is_mapped(addr_, length_); }

 private:
  DirectMap(void* addr, size_t length) : addr_(addr), length_(length) {}
  void* addr_;
  size_t length_;
};

// Every media event of a mount, as JSON text, on the subscription's thread.
class Subscription {
 public:
  using Callback = std::function<void(const std::string& json)>;
  static std::unique_ptr<Subscription> Start(const std::string& path_on_mount, Callback cb,
                                             int* error = nullptr) {
    std::unique_ptr<Subscription> s(new Subscription(std::move(cb)));
    const int rc = udax_subscribe(path_on_mount.c_str(), &Subscription::Trampoline, s.get(), &s->sub_);
    if (error != nullptr) *error = -rc;
    if (rc != 0) return nullptr;
    return s;
  }
  ~Subscription() { udax_unsubscribe(sub_); }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

 private:
  explicit Subscription(Callback cb) : cb_(std::move(cb)) {}
  static void Trampoline(const char* json, void* arg) { static_cast<Subscription*>(arg)->cb_(json); }
  Callback cb_;
  udax_subscription* sub_ = nullptr;
};

}  // namespace udax
