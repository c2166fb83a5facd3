// sysprobe: makes one system call the way an attacker inside a node would, and prints what the
// kernel answered ("ok" or "errno NAME"), always exiting 0. Built static by the security tests
// and bind-mounted into nodes, so a busybox image needs nothing else. Usage:
//   sysprobe keyctl | vsock | vsock-high | clone3 | unshare-user | clone-newnet | bpf | ptrace-self
//   sysprobe mknod-open PATH b|c MAJOR MINOR | open PATH | fds
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static int report(long r) {
  if (r < 0) printf("errno %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  else printf("ok\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: sysprobe OP [ARGS]\n"); return 2; }
  const char *op = argv[1];
  if (!strcmp(op, "keyctl")) return report(syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL));
  if (!strcmp(op, "vsock")) return report(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
  // The kernel reads socket's domain as an int: high bits must not smuggle AF_VSOCK past a filter.
  if (!strcmp(op, "vsock-high")) return report(syscall(SYS_socket, 40L | (1L << 32), (long)SOCK_STREAM, 0L));
  if (!strcmp(op, "inet")) return report(socket(AF_INET, SOCK_DGRAM, 0));
  if (!strcmp(op, "clone3")) return report(syscall(SYS_clone3, NULL, 0));
  if (!strcmp(op, "unshare-user")) return report(unshare(CLONE_NEWUSER));
  if (!strcmp(op, "clone-newnet")) {
    long pid = syscall(SYS_clone, (long)(CLONE_NEWNET | SIGCHLD), 0L, 0L, 0L, 0L);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    return report(pid);
  }
  if (!strcmp(op, "bpf")) return report(syscall(SYS_bpf, 0, NULL, 0));
  if (!strcmp(op, "mknod-open") && argc == 6) {
    mode_t type = argv[3][0] == 'b' ? S_IFBLK : S_IFCHR;
    unlink(argv[2]);
    if (mknod(argv[2], type | 0600, makedev(atoi(argv[4]), atoi(argv[5]))) < 0) { printf("mknod "); return report(-1); }
    printf("open ");
    return report(open(argv[2], O_RDONLY));
  }
  if (!strcmp(op, "open") && argc == 3) return report(open(argv[2], O_RDONLY));
  if (!strcmp(op, "fds")) {
    // The descriptors this process holds, beyond the standard three.
    DIR *d = opendir("/proc/self/fd");
    if (!d) return report(-1);
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] == '.' || fd <= 2 || fd == self) continue;
      char link[4096] = "", p[64];
      snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(p, link, sizeof link - 1);
      if (n > 0) link[n] = 0;
      printf("fd %d %s\n", fd, link);
    }
    closedir(d);
    printf("end\n");
    return 0;
  }
  fprintf(stderr, "sysprobe: unknown operation %s\n", op);
  return 2;
}
