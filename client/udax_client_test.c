/* udax_client_test.c -- a small libudax client for the mounted tests (tests/fs/tests/042).
 *
 *   udax_client_test write FILE OFF LEN CHAR     map rw, fill, udax_persist, unmap
 *   udax_client_test read FILE OFF LEN           map r, print the distinct bytes seen
 *   udax_client_test hold FILE OFF LEN DIR       map r, touch, create DIR/ready, wait for
 *                                                DIR/go, touch every page again; a SIGBUS
 *                                                is reported (code, offset in the map)
 *   udax_client_test map FILE                    try a read map of the whole file, print
 *                                                the result (for refusals)
 * Prints one line per outcome; exit 0 unless set-up fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "include/udaxfs/udax.h"

static char* g_base;
static size_t g_len;

static const char* CodeName(int code) {
  switch (code) {
    case BUS_ADRERR: return "BUS_ADRERR";
    case BUS_MCEERR_AO: return "BUS_MCEERR_AO";
    case BUS_MCEERR_AR: return "BUS_MCEERR_AR";
    default: return "other";
  }
}

static void OnSigbus(int sig, siginfo_t* si, void* ctx) {
  (void)sig;
  (void)ctx;
  char buf[160];
  const char* a = (const char*)si->si_addr;
  int n;
  if (a >= g_base && a < g_base + g_len) {
    n = snprintf(buf, sizeof(buf), "SIGBUS %s at map offset %ld\n", CodeName(si->si_code), (long)(a - g_base));
  } else {
    n = snprintf(buf, sizeof(buf), "SIGBUS %s outside the map\n", CodeName(si->si_code));
  }
  (void)!write(1, buf, (size_t)n);
  _exit(0);
}

static int Open(const char* path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) {
    perror(path);
    exit(2);
  }
  return fd;
}

static void WaitFor(const char* dir, const char* name) {
  char p[4096];
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  struct stat st;
  while (stat(p, &st) != 0) usleep(10000);
}

static void Touch(const char* dir, const char* name) {
  char p[4096];
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  int fd = open(p, O_CREAT | O_WRONLY, 0644);
  if (fd >= 0) close(fd);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: see the file comment\n");
    return 2;
  }
  const char* cmd = argv[1];
  const char* path = argv[2];
  if (strcmp(cmd, "map") == 0) {
    int fd = Open(path, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    void* addr;
    int rc = udax_map(fd, 0, (size_t)st.st_size, UDAX_PROT_READ, &addr);
    printf("udax_map: %s\n", rc == 0 ? "ok" : strerror(-rc));
    return 0;
  }
  if (argc < 5) return 2;
  const off_t off = strtoll(argv[3], NULL, 0);
  const size_t len = strtoull(argv[4], NULL, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, NULL);
  if (strcmp(cmd, "write") == 0 && argc == 6) {
    int fd = Open(path, O_RDWR);
    void* addr;
    int rc = udax_map(fd, off, len, UDAX_PROT_READ | UDAX_PROT_WRITE, &addr);
    close(fd);  /* the map outlives the descriptor, as mmap's does */
    if (rc != 0) {
      printf("udax_map: %s\n", strerror(-rc));
      return 1;
    }
    memset(addr, argv[5][0], len);
    rc = udax_persist(addr, len);
    printf("wrote %zu bytes of '%c', persist: %s\n", len, argv[5][0], rc == 0 ? "ok" : strerror(-rc));
    udax_unmap(addr);
    return 0;
  }
  int fd = Open(path, O_RDONLY);
  void* addr;
  int rc = udax_map(fd, off, len, UDAX_PROT_READ, &addr);
  close(fd);
  if (rc != 0) {
    printf("udax_map: %s\n", strerror(-rc));
    return 1;
  }
  g_base = addr;
  g_len = len;
  if (strcmp(cmd, "read") == 0) {
    int seen[256] = {0};
    for (size_t i = 0; i < len; ++i) seen[(unsigned char)g_base[i]] = 1;
    printf("bytes seen:");
    for (int c = 0; c < 256; ++c) {
      if (seen[c]) printf(c >= 32 && c < 127 ? " '%c'" : " %d", c);
    }
    printf("\n");
    udax_unmap(addr);
    return 0;
  }
  if (strcmp(cmd, "hold") == 0 && argc == 6) {
    volatile char sink = 0;
    for (size_t i = 0; i < len; i += 4096) sink += g_base[i];
    Touch(argv[5], "ready");
    WaitFor(argv[5], "go");
    for (size_t i = 0; i < len; i += 4096) sink += g_base[i];
    (void)sink;
    printf("second touch: no signal\n");
    return 0;
  }
  return 2;
}
