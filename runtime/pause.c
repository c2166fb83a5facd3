// netlab-pause: the default command of a node that gives none. An idle PID 1 should cost next
// to nothing: this one is a static binary without libc (~12 KiB resident, busybox `sleep inf`
// is ~1.3 MiB because the whole busybox binary is mapped). It blocks SIGTERM, SIGINT and
// SIGCHLD and waits for them with sigtimedwait (no handlers, so no signal trampoline needed):
// TERM/INT end it with status 0 (so `down` needs no SIGKILL), CHLD reaps orphans that
// `netlab exec` leaves behind, as a PID 1 must.
//   cc -O2 -static -nostdlib -fno-stack-protector -o netlab-pause pause.c   (x86-64, aarch64)
#include <sys/syscall.h>

#define SIGINT_ 2
#define SIGTERM_ 15
#define SIGCHLD_ 17
#define WNOHANG_ 1

static long sys4(long n, long a, long b, long c, long d) {
  long r;
#if defined(__x86_64__)
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c, x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  r = x0;
#else
#error "netlab-pause: add the syscall convention of this architecture"
#endif
  return r;
}

void _start(void) {
  unsigned long set = (1UL << (SIGINT_ - 1)) | (1UL << (SIGTERM_ - 1)) | (1UL << (SIGCHLD_ - 1));
  sys4(SYS_rt_sigprocmask, 0 /* SIG_BLOCK */, (long)&set, 0, sizeof set);
  for (;;) {
    long sig = sys4(SYS_rt_sigtimedwait, (long)&set, 0, 0, sizeof set);
    if (sig == SIGTERM_ || sig == SIGINT_) sys4(SYS_exit_group, 0, 0, 0, 0);
    if (sig == SIGCHLD_) while (sys4(SYS_wait4, -1, 0, WNOHANG_, 0) > 0) {}
  }
}
