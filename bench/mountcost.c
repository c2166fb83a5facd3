// Bench probe (compiled by bench/run.ts into its scratch directory, not part of netlab): the
// cost of what the container supervisor does first for every container, clone() with new
// mount/pid/uts/ipc namespaces (the kernel copies the caller's whole mount table) and, in the
// child, making every mount private (a walk over that copy). Prints the mean ms per container
// and the number of mounts the caller sees.
//
//   mountcost [COUNT]
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20;
  if (n < 1) n = 1;
  int mounts = 0;
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (f) {
    int c;
    while ((c = fgetc(f)) != EOF) if (c == '\n') mounts++;
    fclose(f);
  }
  double t0 = now_ms();
  for (int i = 0; i < n; i++) {
    pid_t p = syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0);
    if (p < 0) { perror("clone"); return 1; }
    if (p == 0) {
      if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) _exit(1);
      _exit(0);
    }
    int st;
    if (waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "child failed\n"); return 1; }
  }
  printf("%d %.4f\n", mounts, (now_ms() - t0) / n);
  return 0;
}
