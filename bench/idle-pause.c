// Bench probe (compiled by bench/run.ts into its scratch directory, not part of netlab): the
// smallest possible idle PID 1, a static binary without libc that only waits for signals, to
// compare its resident memory with busybox's `sleep inf` (netlab's default container command).
// x86-64 only (raw syscall); elsewhere the bench skips this comparison.
//
//   cc -O2 -static -nostdlib -fno-stack-protector -o idle-pause idle-pause.c
#include <sys/syscall.h>

static long sys0(long n) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n) : "rcx", "r11", "memory");
  return r;
}

void _start(void) {
  for (;;) sys0(SYS_pause);
}
