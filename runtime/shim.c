// netlab-shim: the small native helper of netlab's container runtime. Node cannot fork safely
// (it is multi-threaded), so the namespace and mount work that must happen between fork and
// exec lives here. Its modes: supervise and exec (below), probe, capture, cp-in and cp-out (each
// described at its own section):
//
//   netlab-shim supervise LABDIR NODE...
//     One process per lab (not per container). Starts each NODE from LABDIR/NODE/{spec,argv,env}
//     as PID 1 of new pid/mount/uts/ipc/cgroup namespaces, joined to its network namespace,
//     root filesystem set up and pivoted into, capabilities dropped, then exec'd. Prints
//     "ok NODE PID" or "err NODE MESSAGE" per node and "ready", then detaches (own session) and
//     stays only to reap: each exit is written to LABDIR/NODE/exit ("exited N" / "killed SIG").
//     It exits when its last container has exited.
//
//   netlab-shim exec PID [-t] [-u USER] [-w DIR] [-s SECCOMP] -- CMD ARGS...
//     Runs CMD inside the container whose PID 1 is PID (host pid): its cgroups, namespaces,
//     root, environment, capability bounding set and no_new_privs, as USER in DIR (the node's
//     user and working_dir, passed by container.ts); returns CMD's exit code.
//
// It reads specs written by runtime/container.ts; every value it needs is a plain line
// KEY=VALUE there, argv and env are NUL-separated. No shell is ever involved.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
struct nl_mount_attr { unsigned long long attr_set, attr_clr, propagation, userns_fd; };

#define MAX_LINES 256
#define MAX_ARGS 4096

static int err_fd = -1; // child -> supervisor: why setup failed (CLOEXEC pipe)

static void die(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 64, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > (int)sizeof buf - 64) n = sizeof buf - 64;
  n += snprintf(buf + n, 64, ": %s", strerror(errno));
  if (err_fd >= 0) { ssize_t w = write(err_fd, buf, n); (void)w; }
  else fprintf(stderr, "netlab-shim: %s\n", buf);
  _exit(127);
}

static char *read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (n == cap) { cap *= 2; buf = realloc(buf, cap + 1); }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) { if (errno == EINTR) continue; free(buf); close(fd); return NULL; }
    if (r == 0) break;
    n += r;
  }
  close(fd);
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

/** Splits a NUL-separated file into a NULL-terminated vector. */
static char **read_vec(const char *path) {
  size_t len = 0;
  char *buf = read_file(path, &len);
  if (!buf) return NULL;
  char **v = calloc(MAX_ARGS + 1, sizeof(char *));
  size_t k = 0;
  for (size_t i = 0; i < len && k < MAX_ARGS; ) {
    v[k++] = buf + i;
    i += strlen(buf + i) + 1;
  }
  v[k] = NULL;
  return v;
}

struct spec {
  char *lines[MAX_LINES];
  int n;
};

static int read_spec(const char *path, struct spec *s) {
  char *buf = read_file(path, NULL);
  if (!buf) return -1;
  s->n = 0;
  for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l && s->n < MAX_LINES; l = strtok_r(NULL, "\n", &save)) s->lines[s->n++] = l;
  return 0;
}

/** The value of the first KEY=, or NULL. */
static const char *get(struct spec *s, const char *key) {
  size_t kl = strlen(key);
  for (int i = 0; i < s->n; i++) if (!strncmp(s->lines[i], key, kl) && s->lines[i][kl] == '=') return s->lines[i] + kl + 1;
  return NULL;
}

static void write_str(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", path);
  if (write(fd, text, strlen(text)) < 0) die("write %s", path);
  close(fd);
}

static void mkdir_p(const char *path, mode_t mode) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') { *p = 0; mkdir(tmp, mode); *p = '/'; }
  }
  if (mkdir(tmp, mode) < 0 && errno != EEXIST) die("mkdir %s", path);
}

static void touch(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && errno != EEXIST && errno != EISDIR) die("create %s", path);
  if (fd >= 0) close(fd);
}

static void bind_mount(const char *src, const char *dst, int readonly, int is_dir) {
  if (is_dir) {
    mkdir_p(dst, 0755);
  } else {
    // A file volume into a directory the image lacks: make its parents first, as Docker does.
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dst);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) { *slash = 0; mkdir_p(parent, 0755); }
    touch(dst);
  }
  if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind mount %s on %s", src, dst);
  if (readonly) {
    struct nl_mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
    // Recursive read-only (submounts too); fall back to a plain remount on old kernels.
    if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof attr) < 0 &&
        mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL) < 0)
      die("make %s read-only", dst);
  }
}

static void path_join(char *out, size_t n, const char *a, const char *b) {
  snprintf(out, n, "%s%s%s", a, b[0] == '/' ? "" : "/", b);
}

/** A minimal /dev: device nodes bound from the host, a private devpts, shm. */
static void setup_dev(const char *root) {
  char p[4096], q[4096];
  path_join(p, sizeof p, root, "/dev");
  mkdir_p(p, 0755);
  if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") < 0) die("mount /dev");
  const char *devs[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };
  for (int i = 0; devs[i]; i++) {
    snprintf(p, sizeof p, "%s/dev/%s", root, devs[i]);
    snprintf(q, sizeof q, "/dev/%s", devs[i]);
    touch(p);
    if (mount(q, p, NULL, MS_BIND, NULL) < 0) die("bind %s", q);
  }
  snprintf(p, sizeof p, "%s/dev/pts", root);
  mkdir_p(p, 0755);
  if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0) die("mount /dev/pts");
  snprintf(p, sizeof p, "%s/dev/shm", root);
  mkdir_p(p, 01777);
  if (mount("shm", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0) die("mount /dev/shm");
  const char *links[][2] = { { "pts/ptmx", "ptmx" }, { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
                             { "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" }, { NULL, NULL } };
  for (int i = 0; links[i][0]; i++) {
    snprintf(p, sizeof p, "%s/dev/%s", root, links[i][1]);
    if (symlink(links[i][0], p) < 0 && errno != EEXIST) die("symlink %s", p);
  }
}


/** Closes every descriptor from `low` up: whatever the shell that ran `netlab up` left open (a
 *  directory fd is a way out of any chroot) must not reach a container. */
static void close_fds_from(int low, int cloexec_only) {
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC 4
#endif
  if (syscall(SYS_close_range, (unsigned)low, ~0U, cloexec_only ? CLOSE_RANGE_CLOEXEC : 0) == 0) return;
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 1 << 20) max = 1 << 20;
  for (int fd = low; fd < max; fd++) {
    if (cloexec_only) { int fl = fcntl(fd, F_GETFD); if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC); }
    else close(fd);
  }
}

/** A compiled program file (seccomp classic BPF, or the eBPF device program), read once per
 *  supervisor and shared by the containers that name the same file. */
struct program { char path[4096]; void *code; size_t len; int bpf_fd; };
#define MAX_PROGRAMS 64
static struct program programs[MAX_PROGRAMS];
static int nprograms;

static struct program *load_program(const char *path) {
  for (int i = 0; i < nprograms; i++) if (!strcmp(programs[i].path, path)) return &programs[i];
  if (nprograms == MAX_PROGRAMS) { errno = ENOSPC; return NULL; }
  size_t len = 0;
  char *code = read_file(path, &len);
  if (!code || len == 0 || len % 8) { free(code); errno = EINVAL; return NULL; }
  struct program *p = &programs[nprograms++];
  snprintf(p->path, sizeof p->path, "%s", path);
  p->code = code; p->len = len; p->bpf_fd = -1;
  return p;
}

/** Loads the eBPF device program (BPF_PROG_TYPE_CGROUP_DEVICE) once; the fd is close-on-exec. */
static int device_prog_fd(struct program *p, char *log, size_t loglen) {
  if (p->bpf_fd >= 0) return p->bpf_fd;
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (unsigned long)p->code;
  attr.insn_cnt = p->len / 8;
  attr.license = (unsigned long)"Apache";
  p->bpf_fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
  if (p->bpf_fd < 0 && log && loglen > 0) {
    // Load again with the verifier's log, only to say why (a full log of a valid program
    // would not fit and fail with ENOSPC by itself).
    int saved = errno;
    attr.log_buf = (unsigned long)log;
    attr.log_size = loglen;
    attr.log_level = 1;
    int fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    if (fd >= 0) close(fd);
    errno = saved;
  }
  return p->bpf_fd;
}

/** Attaches the device program to the container's cgroup on the unified hierarchy. */
static void attach_device_prog(struct program *p, const char *cgroup_dir) {
  char log[4096] = "";
  int prog = device_prog_fd(p, log, sizeof log);
  if (prog < 0) die("load the device program %s (%s)", p->path, log);
  int cg = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) die("open cgroup %s", cgroup_dir);
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.target_fd = cg;
  attr.attach_bpf_fd = prog;
  attr.attach_type = BPF_CGROUP_DEVICE;
  if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof attr) < 0) die("attach the device program to %s", cgroup_dir);
  close(cg);
}

/** Installs the seccomp filter (after no_new_privs, or with CAP_SYS_ADMIN): the last step
 *  before exec, so everything the shim still does is outside it but the command is not. */
static void install_seccomp(struct program *p) {
  struct sock_fprog prog = { .len = (unsigned short)(p->len / 8), .filter = (struct sock_filter *)p->code };
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) die("install the seccomp filter %s", p->path);
}

/** Docker's masked paths (readable as empty) and read-only paths of /proc and /sys. */
static const char *masked_paths[] = {
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
  "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap", NULL,
};
static const char *readonly_paths[] = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL };

/** Masks and read-only binds under ROOT's /proc and /sys. With `net_rw` (a node with its own
 *  network namespace) /proc/sys/net is bound read-write again: those sysctls are the node's own. */
static void confine_proc(const char *root, int net_rw) {
  char p[4096], empty[4096] = "";
  for (int i = 0; masked_paths[i]; i++) {
    path_join(p, sizeof p, root, masked_paths[i]);
    struct stat st;
    if (lstat(p, &st) < 0) continue; // not on this kernel
    if (S_ISDIR(st.st_mode)) {
      // One empty read-only tmpfs, bound over every masked directory after the first (a bind
      // is cheaper than a new superblock per directory).
      if (!*empty) {
        if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=555") < 0) die("mask %s", masked_paths[i]);
        snprintf(empty, sizeof empty, "%s", p);
      } else if (mount(empty, p, NULL, MS_BIND, NULL) < 0) die("mask %s", masked_paths[i]);
    } else if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0) die("mask %s", masked_paths[i]);
  }
  for (int i = 0; readonly_paths[i]; i++) {
    path_join(p, sizeof p, root, readonly_paths[i]);
    if (access(p, F_OK) < 0) continue;
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind %s", readonly_paths[i]);
    if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("make %s read-only", readonly_paths[i]);
  }
  if (net_rw) {
    path_join(p, sizeof p, root, "/proc/sys/net");
    // A bind copies the read-only flag of the mount it comes from: clear it on the new one.
    if (access(p, F_OK) == 0 && (mount(p, p, NULL, MS_BIND, NULL) < 0 || mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0))
      die("bind /proc/sys/net read-write");
  }
}

/** sysctl=KEY<TAB>VALUE lines, written before /proc/sys turns read-only (Docker's --sysctl). The
 *  keys were checked to be namespaced ones (topology/security.ts). */
static void write_sysctls(const char *root, struct spec *s) {
  char p[4096], key[1024];
  for (int i = 0; i < s->n; i++) {
    if (strncmp(s->lines[i], "sysctl=", 7)) continue;
    snprintf(key, sizeof key, "%s", s->lines[i] + 7);
    char *val = strchr(key, '\t');
    if (!val) continue;
    *val++ = 0;
    for (char *c = key; *c; c++) if (*c == '.') *c = '/';
    snprintf(p, sizeof p, "%s/proc/sys/%s", root, key);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die("sysctl %s", s->lines[i] + 7);
    if (write(fd, val, strlen(val)) < 0) die("sysctl %s", s->lines[i] + 7);
    close(fd);
  }
}

static int last_cap(void) {
  char *s = read_file("/proc/sys/kernel/cap_last_cap", NULL);
  int n = s ? atoi(s) : CAP_LAST_CAP;
  free(s);
  return n;
}

/** Bounding set reduced to `keep` (a 64-bit mask), effective/permitted/inheritable likewise. */
static void limit_caps(unsigned long long keep) {
  int last = last_cap();
  for (int c = 0; c <= last; c++) {
    if (!(keep & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) die("drop capability %d", c);
  }
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capget, &hdr, data) < 0) die("capget");
  for (int i = 0; i < 2; i++) {
    unsigned int m = (unsigned int)(keep >> (32 * i));
    data[i].effective &= m; data[i].permitted &= m; data[i].inheritable &= m;
  }
  if (syscall(SYS_capset, &hdr, data) < 0) die("capset");
}

/** USER = uid:gid[:g1,g2,...] as container.ts resolved it in the image's own account files, or
 *  (netlab exec -u) a name looked up in the container's /etc/passwd, or uid[:gid]. */
static void switch_user(const char *user) {
  uid_t uid = 0; gid_t gid = 0;
  gid_t groups[64];
  size_t ngroups = 0;
  char name[1024];
  snprintf(name, sizeof name, "%s", user);
  char *colon = strchr(name, ':');
  char *glist = NULL;
  if (colon) {
    *colon = 0;
    glist = strchr(colon + 1, ':');
    if (glist) *glist++ = 0;
  }
  char *end;
  unsigned long v = strtoul(name, &end, 10);
  if (*name && !*end) { uid = v; gid = v; }
  else {
    char *pw = read_file("/etc/passwd", NULL);
    int found = 0;
    for (char *save = NULL, *l = pw ? strtok_r(pw, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
      char *f[7] = { 0 };
      int k = 0;
      for (char *s2 = NULL, *t = strtok_r(l, ":", &s2); t && k < 7; t = strtok_r(NULL, ":", &s2)) f[k++] = t;
      if (k >= 4 && !strcmp(f[0], name)) { uid = atoi(f[2]); gid = atoi(f[3]); found = 1; break; }
    }
    if (!found) { errno = ENOENT; die("user %s not found in the container's /etc/passwd", name); }
  }
  if (colon) gid = strtoul(colon + 1, NULL, 10);
  for (char *save = NULL, *t = glist ? strtok_r(glist, ",", &save) : NULL; t && ngroups < sizeof groups / sizeof groups[0]; t = strtok_r(NULL, ",", &save))
    groups[ngroups++] = strtoul(t, NULL, 10);
  if (setgroups(ngroups, ngroups ? groups : NULL) < 0) die("setgroups");
  if (setgid(gid) < 0) die("setgid %u", gid);
  if (setuid(uid) < 0) die("setuid %u", uid);
}

static void set_env(char **env) {
  clearenv();
  setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
  for (int i = 0; env && env[i]; i++) putenv(env[i]);
}

/** Builds the container's root at ROOT from the spec's root lines, in order, as the image
 *  provider described it (runtime/images/): layer= (overlay lowerdirs, top first), rootbind=
 *  (a tree bound read-only), tmpfs=TARGET<TAB>MODE, overlaydir=TARGET (the writable layer over
 *  that directory of the tree), robind=SRC<TAB>TARGET (read-only, skipped when SRC is absent). */
static void build_root(struct spec *s, const char *root, const char *upper, const char *work) {
  char p[4096], opts[8192];
  size_t off = 0;
  for (int i = 0; i < s->n; i++) {
    if (strncmp(s->lines[i], "layer=", 6)) continue;
    int w = snprintf(opts + off, sizeof opts - off, "%s%s", off ? ":" : "lowerdir=", s->lines[i] + 6);
    if (w < 0 || (size_t)w >= sizeof opts - off) { errno = E2BIG; die("too many image layers"); }
    off += w;
  }
  if (off) {
    snprintf(opts + off, sizeof opts - off, ",upperdir=%s,workdir=%s", upper, work);
    if (mount("overlay", root, "overlay", 0, opts) < 0) die("mount overlay rootfs (%s)", opts);
  }
  for (int i = 0; i < s->n; i++) {
    const char *l = s->lines[i];
    char line[8192], *tab;
    if (!strncmp(l, "rootbind=", 9)) {
      bind_mount(l + 9, root, 1, 1);
    } else if (!strncmp(l, "tmpfs=", 6)) {
      snprintf(line, sizeof line, "%s", l + 6);
      const char *mode = "755";
      if ((tab = strchr(line, '\t'))) { *tab = 0; mode = tab + 1; }
      char o[64];
      snprintf(o, sizeof o, "mode=%s", mode);
      path_join(p, sizeof p, root, line);
      if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, o) < 0) die("mount tmpfs on %s", line);
    } else if (!strncmp(l, "overlaydir=", 11)) {
      path_join(p, sizeof p, root, l + 11);
      snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", l + 11, upper, work);
      if (mount("overlay", p, "overlay", 0, opts) < 0) die("mount overlay on %s", l + 11);
    } else if (!strncmp(l, "robind=", 7)) {
      snprintf(line, sizeof line, "%s", l + 7);
      if (!(tab = strchr(line, '\t'))) continue;
      *tab = 0;
      struct stat st;
      if (stat(line, &st) < 0) continue;
      path_join(p, sizeof p, root, tab + 1);
      bind_mount(line, p, 1, S_ISDIR(st.st_mode));
    }
  }
}

/** Runs in the cloned child (PID 1 of its pid namespace): everything between fork and exec. */
static void container_child(const char *dir, struct spec *s, int log_fd, int null_fd) {
  char p[4096];
  // Read before pivot_root: the spec directory is on the host side.
  snprintf(p, sizeof p, "%s/argv", dir);
  char **argv = read_vec(p);
  snprintf(p, sizeof p, "%s/env", dir);
  char **env = read_vec(p);
  if (!argv || !argv[0]) { errno = EINVAL; die("empty command in %s/argv", dir); }
  // 1. cgroups: join, then a cgroup namespace rooted at the container's own cgroup.
  for (int i = 0; i < s->n; i++) if (!strncmp(s->lines[i], "cgroup=", 7)) write_str(s->lines[i] + 7, "0");
  // Device rules on the unified hierarchy (cgroup v1's are files netlab wrote before the start).
  const char *devprog = get(s, "devprog"), *devcgroup = get(s, "devcgroup");
  if (devprog && *devprog && devcgroup && *devcgroup) {
    struct program *dp = load_program(devprog);
    if (!dp) die("read device program %s", devprog);
    attach_device_prog(dp, devcgroup);
  }
  struct program *filter = NULL;
  const char *seccomp = get(s, "seccomp");
  if (seccomp && *seccomp && !(filter = load_program(seccomp))) die("read seccomp filter %s", seccomp);
  if (unshare(CLONE_NEWCGROUP) < 0) die("unshare cgroup namespace");
  // 2. network namespace (absent: the host's stack, network_mode host).
  const char *netns = get(s, "netns");
  if (netns && *netns) {
    int fd = open(netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open netns %s", netns);
    if (setns(fd, CLONE_NEWNET) < 0) die("join netns %s", netns);
    close(fd);
  }
  const char *hostname = get(s, "hostname");
  if (hostname && sethostname(hostname, strlen(hostname)) < 0) die("sethostname");
  // 3. root filesystem, in this private mount namespace (gone when the container is).
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private");
  const char *root = get(s, "rootfs"), *upper = get(s, "upper"), *work = get(s, "work");
  if (!root || !upper || !work) { errno = EINVAL; die("spec %s lacks rootfs/upper/work", dir); }
  build_root(s, root, upper, work);
  // Volumes: volume=ro|rw<TAB>SRC<TAB>DST
  for (int i = 0; i < s->n; i++) {
    if (strncmp(s->lines[i], "volume=", 7)) continue;
    char line[8192];
    snprintf(line, sizeof line, "%s", s->lines[i] + 7);
    char *mode = line, *src = strchr(mode, '\t');
    if (!src) continue;
    *src++ = 0;
    char *dst = strchr(src, '\t');
    if (!dst) continue;
    *dst++ = 0;
    struct stat st;
    if (stat(src, &st) < 0) die("volume source %s", src);
    path_join(p, sizeof p, root, dst);
    bind_mount(src, p, !strcmp(mode, "ro"), S_ISDIR(st.st_mode));
  }
  path_join(p, sizeof p, root, "/proc");
  mkdir_p(p, 0555);
  if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
  path_join(p, sizeof p, root, "/sys");
  mkdir_p(p, 0555);
  if (mount("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /sys");
  write_sysctls(root, s);
  const char *mask = get(s, "procmask");
  if (mask && !strcmp(mask, "1")) confine_proc(root, netns && *netns);
  setup_dev(root);
  // 4. pivot into it; the old root is detached so the host's tree is unreachable.
  if (chdir(root) < 0) die("chdir %s", root);
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
  if (umount2(".", MNT_DETACH) < 0) die("detach old root");
  if (chdir("/") < 0) die("chdir /");
  const char *cwd = get(s, "cwd");
  if (cwd && *cwd && chdir(cwd) < 0) die("working_dir %s", cwd);
  // 5. privileges: fewer capabilities and no_new_privs unless privileged, then the user.
  // The capability set comes computed from netlab (Docker's defaults, cap_add/cap_drop, none of
  // the network ones in the host's namespace); a missing key keeps nothing.
  const char *priv = get(s, "privileged");
  if (!priv || strcmp(priv, "1")) {
    const char *caps = get(s, "caps");
    limit_caps(caps ? strtoull(caps, NULL, 16) : 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
  }
  const char *user = get(s, "user");
  if (user && *user) switch_user(user);
  // 6. stdio to the log, then the command itself becomes PID 1, with the default signal
  // dispositions: the supervisor ignores SIGPIPE/SIGHUP/SIGINT and SIG_IGN survives exec.
  if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) die("redirect stdio");
  signal(SIGPIPE, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  set_env(env);
  close_fds_from(3, 1); // err_fd and the program fds close at exec, nothing else is left open
  if (filter) install_seccomp(filter);
  execvp(argv[0], argv);
  die("exec %s", argv[0]);
}

struct started { pid_t pid; char name[256]; };

static void write_exit(const char *labdir, const char *name, int status) {
  char p[4096], tmp[4096], text[64];
  if (WIFEXITED(status)) snprintf(text, sizeof text, "exited %d\n", WEXITSTATUS(status));
  else snprintf(text, sizeof text, "killed %d\n", WTERMSIG(status));
  snprintf(p, sizeof p, "%s/%s/exit", labdir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t w = write(fd, text, strlen(text));
  (void)w;
  close(fd);
  rename(tmp, p);
}

/** Clones node i's container; returns its pid (and the read end of its setup-error pipe), or
 *  0 after printing why it could not start. */
static pid_t start_one(const char *labdir, const char *name, int null_fd, int *err_rd) {
  char dir[4096], p[4096];
  snprintf(dir, sizeof dir, "%s/%s", labdir, name);
  struct spec s;
  snprintf(p, sizeof p, "%s/spec", dir);
  if (read_spec(p, &s) < 0) { printf("err %s cannot read %s: %s\n", name, p, strerror(errno)); return 0; }
  const char *log = get(&s, "log");
  int log_fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) { printf("err %s cannot open log %s: %s\n", name, log, strerror(errno)); return 0; }
  // Programs are read (and the device program verified by the kernel) once per supervisor: the
  // child inherits them with its copy of memory and descriptors.
  const char *devprog = get(&s, "devprog"), *seccomp = get(&s, "seccomp");
  if (devprog && *devprog) {
    struct program *dp = load_program(devprog);
    char log[4096] = "";
    if (!dp || device_prog_fd(dp, log, sizeof log) < 0) { printf("err %s device program %s: %s %s\n", name, devprog, strerror(errno), log); close(log_fd); return 0; }
  }
  if (seccomp && *seccomp && !load_program(seccomp)) { printf("err %s seccomp filter %s: %s\n", name, seccomp, strerror(errno)); close(log_fd); return 0; }
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) { printf("err %s pipe: %s\n", name, strerror(errno)); close(log_fd); return 0; }
  fflush(stdout);
  pid_t pid = syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) { printf("err %s clone: %s\n", name, strerror(errno)); close(log_fd); close(pipefd[0]); close(pipefd[1]); return 0; }
  if (pid == 0) {
    close(pipefd[0]);
    err_fd = pipefd[1];
    container_child(dir, &s, log_fd, null_fd);
  }
  close(pipefd[1]);
  close(log_fd);
  *err_rd = pipefd[0];
  return pid;
}

/** Waits until node i's child has exec'd (its error pipe closes empty) or failed. */
static int finish_one(const char *labdir, const char *name, pid_t pid, int err_rd, struct started *kid) {
  char why[1024], p[4096];
  ssize_t n;
  do n = read(err_rd, why, sizeof why - 1); while (n < 0 && errno == EINTR);
  close(err_rd);
  if (n > 0) {
    why[n] = 0;
    int st;
    waitpid(pid, &st, 0);
    printf("err %s %s\n", name, why);
    return 0;
  }
  snprintf(p, sizeof p, "%s/%s/pid", labdir, name);
  FILE *f = fopen(p, "w");
  if (f) { fprintf(f, "%d\n", pid); fclose(f); }
  kid->pid = pid;
  snprintf(kid->name, sizeof kid->name, "%s", name);
  printf("ok %s %d\n", name, pid);
  return 1;
}

/** Containers set themselves up in parallel, at most this many at a time: their mount work
 *  overlaps with the next ones' clones instead of waiting one by one. */
#define START_WINDOW 16

static void links_down(const char *labdir, const char *name);

static int supervise(const char *labdir, int count, char **names) {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN); // ^C on `netlab up` must not reach the lab's containers
  struct started *kids = calloc(count, sizeof *kids);
  pid_t *pids = calloc(count, sizeof *pids);
  int *pipes = calloc(count, sizeof *pipes);
  int running = 0;
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int i = 0, done = 0; done < count; ) {
    while (i < count && i - done < START_WINDOW) { pids[i] = start_one(labdir, names[i], null_fd, &pipes[i]); i++; }
    if (pids[done]) running += finish_one(labdir, names[done], pids[done], pipes[done], &kids[done]);
    done++;
  }
  printf("ready\n");
  fflush(stdout);
  // Detach: no terminal, no pipe to the `netlab up` that started us.
  dup2(null_fd, 0); dup2(null_fd, 1); dup2(null_fd, 2);
  setsid();
  while (running > 0) {
    int st;
    pid_t pid = waitpid(-1, &st, 0);
    if (pid < 0) { if (errno == EINTR) continue; break; }
    for (int i = 0; i < count; i++) {
      if (kids[i].pid == pid) { write_exit(labdir, kids[i].name, st); links_down(labdir, kids[i].name); kids[i].pid = 0; running--; break; }
    }
  }
  return 0;
}

/** Reads "Key:\tVALUE" from /proc/PID/status as a number (hex when base 16). */
static unsigned long long proc_status(pid_t pid, const char *key, int base) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/status", pid);
  char *buf = read_file(p, NULL);
  if (!buf) die("read %s", p);
  char *l = strstr(buf, key);
  unsigned long long v = l ? strtoull(l + strlen(key) + 1, NULL, base) : 0;
  free(buf);
  return v;
}

static int exec_in(pid_t target, int tty, const char *user, const char *cwd, const char *seccomp, char **argv) {
  char p[4096];
  // Namespaces first opened, then joined: cgroup, ipc, uts, net, pid, mnt (mnt last: it moves root).
  const char *kinds[] = { "cgroup", "ipc", "uts", "net", "pid", "mnt", NULL };
  int fds[8];
  for (int i = 0; kinds[i]; i++) {
    snprintf(p, sizeof p, "/proc/%d/ns/%s", target, kinds[i]);
    fds[i] = open(p, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) die("open %s (is the container running?)", p);
  }
  unsigned long long bnd = proc_status(target, "CapBnd:", 16);
  int nnp = (int)proc_status(target, "NoNewPrivs:", 10);
  snprintf(p, sizeof p, "/proc/%d/environ", target);
  size_t envlen = 0;
  char *envbuf = read_file(p, &envlen);
  // Join the container's cgroups so limits apply to what exec runs too.
  snprintf(p, sizeof p, "/proc/%d/cgroup", target);
  char *cg = read_file(p, NULL);
  for (char *save = NULL, *l = cg ? strtok_r(cg, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(l, ':'); if (!c1) continue;
    char *c2 = strchr(c1 + 1, ':'); if (!c2) continue;
    *c2 = 0;
    const char *ctrls = c1 + 1, *path = c2 + 1;
    char file[4096];
    // The unified hierarchy is /sys/fs/cgroup on v2 machines and /sys/fs/cgroup/unified on
    // hybrid ones; the container's device program is attached there, so joining is not optional.
    if (!*ctrls) snprintf(file, sizeof file, "%s%s/cgroup.procs", access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified", path);
    else if (!strncmp(ctrls, "name=", 5)) continue;
    else snprintf(file, sizeof file, "/sys/fs/cgroup/%s%s/cgroup.procs", ctrls, path);
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && *ctrls && strchr(ctrls, ',')) continue; // co-mounted under another name
    if (fd < 0 || write(fd, "0", 1) < 0) die("join the container's cgroup %s", file);
    close(fd);
  }
  struct program *filter = NULL;
  if (seccomp && *seccomp && !(filter = load_program(seccomp))) die("read seccomp filter %s", seccomp);
  for (int i = 0; kinds[i]; i++) {
    if (setns(fds[i], 0) < 0) die("join %s namespace of %d", kinds[i], target);
    close(fds[i]);
  }
  pid_t pid = fork(); // the pid namespace applies to children only
  if (pid < 0) die("fork");
  if (pid == 0) {
    // The container's working directory and user, as its command got them (like docker exec).
    if (chdir(cwd && *cwd ? cwd : "/") < 0) die("chdir %s", cwd && *cwd ? cwd : "/");
    limit_caps(bnd);
    if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
    if (user && *user) switch_user(user);
    char *term = getenv("TERM");
    char termv[256];
    if (term) snprintf(termv, sizeof termv, "TERM=%s", term);
    clearenv();
    setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    for (size_t i = 0; envbuf && i < envlen; i += strlen(envbuf + i) + 1) putenv(envbuf + i);
    if (tty && term) putenv(termv);
    if (filter) install_seccomp(filter);
    execvp(argv[0], argv);
    fprintf(stderr, "netlab exec: %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  // Forward the usual termination signals to the command rather than dying first.
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  int st;
  while (waitpid(pid, &st, 0) < 0) if (errno != EINTR) die("wait");
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}


// ---------------------------------------------------------------- probe: ping, tcp, http, dns, throughput
//
// netlab-shim probe  (reads probes from stdin, one per line, tab-separated)
//   ID ping NETNS ADDR COUNT TIMEOUT_MS [INTERVAL_MS]
//   ID tcp  NETNS ADDR PORT TIMEOUT_MS
//   ID http NETNS ADDR PORT TIMEOUT_MS HOST PATH
//   ID dns  NETNS SERVER[,SERVER...] TIMEOUT_MS NAME TRY_MS ATTEMPTS
//   ID throughput NETNS ADDR PORT TIMEOUT_MS RECEIVER_NETNS DURATION_MS
// NETNS is a /run/netns path or '-' (the namespace the shim runs in). Every probe runs at once
// from this one process: sockets are created inside each source namespace (a socket belongs to
// the namespace it was created in) and then driven by one poll loop, so a full ping matrix of
// N nodes costs one process, not N*(N-1). Output, one line per probe in completion order:
//   ID ok DETAIL      (tcp: connect time in microseconds; http: STATUS<TAB>BODY_HEX;
//                      dns: ADDR[,ADDR...], the A records of NAME after its CNAMEs;
//                      ping: STATS[<TAB>ERROR]; throughput: BYTES<TAB>WINDOW_US)
//   ID fail REASON    (dns: CODE<TAB>INFO, CODE one of nxdomain nodata servfail refused
//                      notimp rcode truncated timeout error; ping, once a request went
//                      out: REASON<TAB>STATS)
// ping sends COUNT echo requests, one every INTERVAL_MS (default 10), and waits for replies
// until TIMEOUT_MS after the last one (or until every request has its reply): 500 requests
// with a 2 s timeout take about 7 s, however many are lost. STATS is SENT,RECEIVED,MIN,AVG,MAX
// (rtt in microseconds, from the send to the kernel's receive timestamp; a duplicate reply
// counts once). It is ok when some reply came back; ERROR is a send that failed and ended it.
// throughput measures TCP: a receiver listens on ADDR:PORT in RECEIVER_NETNS (a socket made
// there), the sender connects from NETNS within TIMEOUT_MS and then sends as fast as it can for
// DURATION_MS; BYTES is what reached the receiver from the connection's start until this loop
// saw the window end (read, or waiting in its socket: counted, not read), WINDOW_US that long
// (at least DURATION_MS). Only the sender's own connection counts: any other is closed. Both
// sockets are reset at the end, so nothing is sent after the measurement. (The kernel sizes
// their buffers itself: fixed 4 MiB ones let the sender overrun a small tbf queue further,
// and the retransmission timeouts that followed cost more than they saved, measured.)
// A dns probe is one A query for NAME exactly as given (search lists, /etc/hosts and the order
// of sources are the caller's: checks/resolve.ts), sent like glibc's stub resolver: to each
// SERVER in turn, TRY_MS per try, ATTEMPTS rounds, a server answering SERVFAIL, NOTIMP or
// REFUSED (or unreachable) passed over for the next, all within TIMEOUT_MS.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#define BODY_MAX 16384
#define DNS_SERVERS 3   // glibc's MAXNS: resolv.conf nameservers after the third are ignored
#define DNS_MSG_MAX 4096
#define DNS_RR_MAX 64   // answer records looked at; more are ignored
#define DNS_ADDR_MAX 16 // addresses reported
#define DNS_CNAME_MAX 16

struct probe {
  char id[64];
  int kind; // 0 ping, 1 tcp, 2 http, 3 dns, 4 throughput
  int ns;   // index into namespaces
  struct in_addr addr;
  int port, count, sent, done;
  long long timeout_us, start_us, last_send_us;
  int fd;   // tcp/http/dns socket; throughput: the sender's
  // ping: when each request went out (CLOCK_REALTIME us, the clock of the kernel's receive
  // timestamps; 0: its send failed), which were answered, the rtts seen.
  long long interval_us, *sent_rt, rtt_min, rtt_max, rtt_sum;
  unsigned char *answered;
  int received;
  char ping_err[128];
  // throughput: the receiver's namespace, its listening socket and the sender's connection as
  // it accepted it; the sender's own address (to know that connection); the window.
  int ns2, lfd, cfd;
  struct sockaddr_in local;
  long long dur_us, window_start_us, bytes;
  char host[256], path[1024];
  char *resp; size_t resp_len; int req_sent;
  // dns: the question in wire form (lower case), the servers and where the retry loop is.
  unsigned char qname[256]; int qname_len;
  struct in_addr servers[DNS_SERVERS]; int nservers, server, attempt, attempts;
  long long try_us, try_end_us;
  unsigned short qid;
  int waited;             // some try went unanswered for its whole time
  char rcode_code[16], rcode_info[64]; // first SERVFAIL/NOTIMP/REFUSED seen, and from whom
  char err_info[128];     // last local error (connect, send, ICMP unreachable)
};

static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static unsigned short icmp_sum(const void *data, int len) {
  const unsigned short *w = data;
  unsigned int sum = 0;
  for (; len > 1; len -= 2) sum += *w++;
  if (len == 1) sum += *(const unsigned char *)w;
  sum = (sum >> 16) + (sum & 0xffff);
  sum += sum >> 16;
  return ~sum;
}

static long long realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void finish(struct probe *p, int ok, const char *detail) {
  if (p->done) return;
  p->done = 1;
  if (p->fd >= 0) { close(p->fd); p->fd = -1; }
  if (p->lfd >= 0) { close(p->lfd); p->lfd = -1; }
  if (p->cfd >= 0) { close(p->cfd); p->cfd = -1; }
  free(p->sent_rt); p->sent_rt = NULL;
  free(p->answered); p->answered = NULL;
  printf("%s\t%s\t%s\n", p->id, ok ? "ok" : "fail", detail);
}

// A ping's result: ok when some reply came back, with what was sent and received.
static void finish_ping(struct probe *p) {
  char stats[128], d[320];
  snprintf(stats, sizeof stats, "%d,%d,%lld,%lld,%lld", p->sent, p->received,
           p->received ? p->rtt_min : 0, p->received ? p->rtt_sum / p->received : 0, p->received ? p->rtt_max : 0);
  if (p->received) {
    if (p->ping_err[0]) { snprintf(d, sizeof d, "%s\t%s", stats, p->ping_err); finish(p, 1, d); }
    else finish(p, 1, stats);
  } else {
    snprintf(d, sizeof d, "%s\t%s", p->ping_err[0] ? p->ping_err : "no reply", stats);
    finish(p, 0, d);
  }
}

// The payload of netlab's echo requests: a marker, the probe's index in this batch and the
// request's number, so a reply is matched to its probe and request whatever else the
// namespace's raw socket sees.
#define PING_MAGIC "netlab\0\0"
struct ping_payload { char magic[8]; unsigned int index, seq; char pad[16]; };

static void send_ping(struct probe *p, int sock, int index, unsigned short ident) {
  struct { struct icmphdr h; struct ping_payload b; } pkt;
  memset(&pkt, 0, sizeof pkt);
  pkt.h.type = ICMP_ECHO;
  pkt.h.un.echo.id = htons(ident);
  pkt.h.un.echo.sequence = htons(p->sent & 0xffff);
  memcpy(pkt.b.magic, PING_MAGIC, 8);
  pkt.b.index = (unsigned int)index;
  pkt.b.seq = (unsigned int)p->sent;
  pkt.h.checksum = icmp_sum(&pkt, sizeof pkt);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = p->addr };
  long long t = realtime_us();
  p->last_send_us = now_us();
  if (sendto(sock, &pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) < 0) {
    p->sent++;
    // No route, unreachable network: the kernel says so at once, and the rest would too.
    if (errno == ENETUNREACH || errno == EHOSTUNREACH || errno == EACCES || errno == EPERM) {
      snprintf(p->ping_err, sizeof p->ping_err, "send: %s", strerror(errno));
      finish_ping(p);
    }
    return; // anything else (a full buffer): that request is lost
  }
  p->sent_rt[p->sent++] = t;
}

// One echo reply for probe P (already matched by namespace, address and payload): its rtt
// from the request's send to RECV_RT, the kernel's receive time.
static void ping_reply(struct probe *p, unsigned int seq, unsigned short wire_seq, long long recv_rt) {
  if (seq >= (unsigned int)p->sent || (seq & 0xffff) != wire_seq || !p->sent_rt[seq] || p->answered[seq]) return;
  p->answered[seq] = 1;
  long long rtt = recv_rt - p->sent_rt[seq];
  if (rtt < 0) rtt = 0; // the wall clock stepped back
  if (!p->received || rtt < p->rtt_min) p->rtt_min = rtt;
  if (!p->received || rtt > p->rtt_max) p->rtt_max = rtt;
  p->rtt_sum += rtt;
  p->received++;
  if (p->received == p->count) finish_ping(p);
}

// A raw ICMP socket gets a copy of every ICMP packet its namespace receives. While the send loop
// runs nothing drains it, so in a full matrix of N nodes it holds the N-1 echo requests from the
// other nodes and its own N-1 replies, 832 bytes of buffer each (measured: 165 KB at N = 100).
// The default receive buffer is 208 KiB, so from N ~ 128 on replies were dropped and reported as
// "no reply". So: keep only echo replies (ICMP_FILTER), and size the buffer for every reply the
// namespace's pings can bring.
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif
static void icmp_socket_setup(int fd, const struct probe *probes, int np, int ns) {
  unsigned int filter = ~(1U << ICMP_ECHOREPLY); // a set bit drops that type
  setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof filter);
  int one = 1; // receive timestamps: an rtt that does not include this loop's own delays
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  long long replies = 0;
  for (int i = 0; i < np; i++) if (probes[i].ns == ns && probes[i].kind == 0) replies += probes[i].count;
  long long want = replies * 2048 + 65536; // the kernel doubles it again for its bookkeeping
  if (want > 64LL << 20) want = 64LL << 20;
  int size = (int)want;
  if (size > 212992 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}


// ---------------------------------------------------------------- probe: dns wire format

// NAME (dotted, no trailing dot) to wire form, lower-cased so answers compare byte for byte.
static int dns_encode(const char *name, unsigned char *out, int *len) {
  int o = 0;
  const char *p = name;
  if (!*p) return -1;
  while (*p) {
    const char *dot = strchr(p, '.');
    int l = dot ? (int)(dot - p) : (int)strlen(p);
    if (l < 1 || l > 63 || o + 1 + l + 1 > 255) return -1;
    out[o++] = (unsigned char)l;
    for (int i = 0; i < l; i++) { unsigned char c = p[i]; out[o++] = c >= 'A' && c <= 'Z' ? c + 32 : c; }
    p += l;
    if (*p == '.') { p++; if (!*p) return -1; }
  }
  out[o++] = 0;
  *len = o;
  return 0;
}

// The name at OFF of MSG in wire form, uncompressed and lower-cased, into OUT (256 bytes).
// Returns the offset just past the name where it starts (not where a pointer led), or -1.
// Compression pointers must point strictly backwards, so every jump makes progress and a
// pointer loop cannot exist; the name's own 255-byte limit bounds the rest.
static int dns_name(const unsigned char *msg, int len, int off, unsigned char *out, int *outlen) {
  int o = 0, end = -1, pos = off, limit = off;
  for (;;) {
    if (pos >= len) return -1;
    unsigned char l = msg[pos];
    if ((l & 0xc0) == 0xc0) {
      if (pos + 1 >= len) return -1;
      int to = ((l & 0x3f) << 8) | msg[pos + 1];
      if (end < 0) end = pos + 2;
      if (to >= limit) return -1;
      limit = to;
      pos = to;
      continue;
    }
    if (l & 0xc0) return -1; // 0x40 and 0x80 label types are obsolete
    if (pos + 1 + l > len || o + 1 + l > 255) return -1;
    out[o++] = l;
    if (!l) break;
    for (int i = 0; i < l; i++) { unsigned char c = msg[pos + 1 + i]; out[o++] = c >= 'A' && c <= 'Z' ? c + 32 : c; }
    pos += 1 + l;
  }
  *outlen = o;
  return end >= 0 ? end : pos + 1;
}

static void dns_fail(struct probe *p, const char *code, const char *info) {
  char d[256];
  snprintf(d, sizeof d, "%s\t%s", code, info);
  finish(p, 0, d);
}

// Out of tries or out of time: the most telling thing seen. A server that said SERVFAIL says
// more than one that said nothing; silence (a try that ran its time) more than a local error.
static void dns_give_up(struct probe *p) {
  if (p->rcode_code[0]) dns_fail(p, p->rcode_code, p->rcode_info);
  else if (p->waited || !p->err_info[0]) dns_fail(p, "timeout", "");
  else dns_fail(p, "error", p->err_info);
}

static int dns_next_server(struct probe *p) {
  if (++p->server == p->nservers) { p->server = 0; p->attempt++; }
  return p->attempt < p->attempts;
}

// Sends the query to the current server (a fresh id per try), passing over servers that cannot
// be reached at all; gives up when the rounds are spent.
static void dns_send(struct probe *p) {
  for (;;) {
    long long left = p->start_us + p->timeout_us - now_us();
    if (left <= 0) { dns_give_up(p); return; }
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &p->servers[p->server], ip, sizeof ip);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = p->servers[p->server] };
    unsigned char q[12 + 256 + 4];
    if (getrandom(&p->qid, sizeof p->qid, 0) != sizeof p->qid) p->qid = (unsigned short)(now_us() ^ getpid());
    memset(q, 0, 12);
    q[0] = p->qid >> 8; q[1] = p->qid & 0xff;
    q[2] = 0x01;        // RD: a stub resolver asks for recursion
    q[5] = 1;           // QDCOUNT
    memcpy(q + 12, p->qname, p->qname_len);
    unsigned char *t = q + 12 + p->qname_len;
    t[0] = 0; t[1] = 1; t[2] = 0; t[3] = 1; // A, IN
    int qlen = 12 + p->qname_len + 4;
    // connect() per try: the kernel then drops datagrams from anyone but this server and
    // reports its ICMP port unreachable as ECONNREFUSED.
    if (connect(p->fd, (struct sockaddr *)&to, sizeof to) < 0) {
      snprintf(p->err_info, sizeof p->err_info, "%s: connect: %s", ip, strerror(errno));
    } else if (send(p->fd, q, qlen, 0) != qlen) {
      snprintf(p->err_info, sizeof p->err_info, "%s: send: %s", ip, strerror(errno));
    } else {
      p->try_end_us = now_us() + (p->try_us < left ? p->try_us : left);
      p->sent++;
      return;
    }
    if (!dns_next_server(p)) { dns_give_up(p); return; }
  }
}

// One datagram from the current server: the final answer, or a reason to try the next server.
static void dns_receive(struct probe *p) {
  static unsigned char msg[DNS_MSG_MAX];
  static struct { unsigned char owner[256]; int olen, type, cls, rdoff, rdlen; } rr[DNS_RR_MAX];
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &p->servers[p->server], ip, sizeof ip);
  ssize_t len = recv(p->fd, msg, sizeof msg, 0);
  if (len < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    snprintf(p->err_info, sizeof p->err_info, "%s: %s", ip, errno == ECONNREFUSED ? "port 53 unreachable" : strerror(errno));
    if (dns_next_server(p)) dns_send(p); else dns_give_up(p);
    return;
  }
  // Not the answer to this try's question: ignore it, as a resolver would (a late answer to an
  // earlier try, or garbage).
  if (len < 12 || ((msg[0] << 8) | msg[1]) != p->qid || !(msg[2] & 0x80)) return;
  int qd = (msg[4] << 8) | msg[5], an = (msg[6] << 8) | msg[7];
  unsigned char nm[256]; int nl;
  int off = 12;
  if (qd != 1) return;
  off = dns_name(msg, len, off, nm, &nl);
  if (off < 0 || off + 4 > len || nl != p->qname_len || memcmp(nm, p->qname, nl)) return;
  off += 4;
  int rcode = msg[3] & 0x0f;
  if (rcode == 2 || rcode == 4 || rcode == 5) {
    if (!p->rcode_code[0]) {
      snprintf(p->rcode_code, sizeof p->rcode_code, "%s", rcode == 2 ? "servfail" : rcode == 4 ? "notimp" : "refused");
      snprintf(p->rcode_info, sizeof p->rcode_info, "%s", ip);
    }
    if (dns_next_server(p)) dns_send(p); else dns_give_up(p);
    return;
  }
  if (msg[2] & 0x02) { dns_fail(p, "truncated", ip); return; } // would need TCP, which this does not speak
  if (rcode == 3) { dns_fail(p, "nxdomain", ip); return; }
  if (rcode != 0) { char why[64]; snprintf(why, sizeof why, "%s: rcode %d", ip, rcode); dns_fail(p, "rcode", why); return; }
  int nrr = 0;
  for (int i = 0; i < an && nrr < DNS_RR_MAX; i++) {
    off = dns_name(msg, len, off, rr[nrr].owner, &rr[nrr].olen);
    if (off < 0 || off + 10 > len) { dns_fail(p, "error", "malformed answer"); return; }
    rr[nrr].type = (msg[off] << 8) | msg[off + 1];
    rr[nrr].cls = (msg[off + 2] << 8) | msg[off + 3];
    rr[nrr].rdlen = (msg[off + 8] << 8) | msg[off + 9];
    rr[nrr].rdoff = off + 10;
    off += 10 + rr[nrr].rdlen;
    if (off > len) { dns_fail(p, "error", "malformed answer"); return; }
    nrr++;
  }
  // Follow the CNAME chain from the question (in any record order, a bounded number of hops),
  // then take the A records of its end.
  unsigned char target[256]; int tl = p->qname_len;
  memcpy(target, p->qname, tl);
  for (int hop = 0; hop < DNS_CNAME_MAX; hop++) {
    int moved = 0;
    for (int i = 0; i < nrr; i++) {
      if (rr[i].type != 5 || rr[i].olen != tl || memcmp(rr[i].owner, target, tl)) continue;
      if (dns_name(msg, rr[i].rdoff + rr[i].rdlen, rr[i].rdoff, nm, &nl) < 0) { dns_fail(p, "error", "malformed CNAME"); return; }
      memcpy(target, nm, nl); tl = nl; moved = 1;
      break;
    }
    if (!moved) break;
  }
  char out[DNS_ADDR_MAX * 16 + 1] = "";
  int na = 0;
  for (int i = 0; i < nrr && na < DNS_ADDR_MAX; i++) {
    if (rr[i].type != 1 || rr[i].cls != 1 || rr[i].rdlen != 4 || rr[i].olen != tl || memcmp(rr[i].owner, target, tl)) continue;
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, msg + rr[i].rdoff, a, sizeof a);
    if (na++) strcat(out, ",");
    strcat(out, a);
  }
  if (!na) { dns_fail(p, "nodata", ip); return; }
  finish(p, 1, out);
}

// ---------------------------------------------------------------- probe: throughput

#include <linux/sockios.h>
#include <sys/ioctl.h>

#define TP_CHUNK (256 * 1024)
#define TP_ROUNDS 16 // reads or writes per socket per turn of the loop, so both ends get turns

static char tp_buf[TP_CHUNK];

// The receiver: listening on the probe's address and port in its own namespace (called there).
static void throughput_listen(struct probe *p) {
  char ip[INET_ADDRSTRLEN], why[192];
  inet_ntop(AF_INET, &p->addr, ip, sizeof ip);
  p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->lfd < 0) { snprintf(why, sizeof why, "receiver: socket: %s", strerror(errno)); finish(p, 0, why); return; }
  int one = 1;
  setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); // an earlier try's TIME_WAIT
  struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = htons(p->port), .sin_addr = p->addr };
  if (bind(p->lfd, (struct sockaddr *)&at, sizeof at) < 0 || listen(p->lfd, 16) < 0) {
    snprintf(why, sizeof why, "receiver: listen on %s:%d: %s", ip, p->port, strerror(errno));
    finish(p, 0, why);
  }
}

// Resets a socket on close: what it still holds is dropped, nothing is sent after the end.
static void reset_on_close(int fd) {
  struct linger l = { .l_onoff = 1, .l_linger = 0 };
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// The window is over (NOW, at or after its end): what the receiver has, read or queued.
static void throughput_done(struct probe *p, long long now) {
  int queued = 0;
  if (p->cfd >= 0 && ioctl(p->cfd, SIOCINQ, &queued) == 0 && queued > 0) p->bytes += queued;
  reset_on_close(p->fd);
  reset_on_close(p->cfd);
  if (!p->bytes) { finish(p, 0, "connected, but no data arrived"); return; }
  char d[64];
  snprintf(d, sizeof d, "%lld\t%lld", p->bytes, now - p->window_start_us);
  finish(p, 1, d);
}

// The receiver's listening socket is readable: take the sender's connection (any other is
// closed), then stop listening.
static void throughput_accept(struct probe *p) {
  for (;;) {
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int c = accept4(p->lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    if (peer.sin_port == p->local.sin_port && peer.sin_addr.s_addr == p->local.sin_addr.s_addr) {
      p->cfd = c;
      close(p->lfd);
      p->lfd = -1;
      return;
    }
    close(c);
  }
}

// The sender's socket is writable: the connection is made (the window starts), or more can be
// sent.
static void throughput_send(struct probe *p) {
  char why[160];
  if (!p->window_start_us) {
    int soerr = 0; socklen_t sl = sizeof soerr;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) { snprintf(why, sizeof why, "connect: %s", strerror(soerr)); finish(p, 0, why); return; }
    p->window_start_us = now_us();
  }
  long long end = p->window_start_us + p->dur_us;
  for (int r = 0; r < TP_ROUNDS && now_us() < end; r++) {
    ssize_t w = send(p->fd, tp_buf, sizeof tp_buf, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) continue;
    if (errno == EAGAIN || errno == EINTR) return;
    snprintf(why, sizeof why, "send: %s", strerror(errno));
    finish(p, 0, why);
    return;
  }
}

// The receiver's connection is readable: count what arrives within the window.
static void throughput_receive(struct probe *p) {
  static char rbuf[TP_CHUNK];
  long long end = p->window_start_us + p->dur_us;
  for (int r = 0; r < TP_ROUNDS && p->window_start_us && now_us() < end; r++) {
    ssize_t got = read(p->cfd, rbuf, sizeof rbuf);
    if (got > 0) { p->bytes += got; continue; }
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    char why[160];
    snprintf(why, sizeof why, "receiver: %s", got == 0 ? "the sender closed the connection early" : strerror(errno));
    finish(p, 0, why);
    return;
  }
}

static int probe_main(void) {
  static struct probe probes[65536];
  static char *ns_names[4096];
  static int ns_icmp[4096];
  int np = 0, nns = 0;
  char line[4096];
  while (fgets(line, sizeof line, stdin) && np < 65536) {
    line[strcspn(line, "\n")] = 0;
    char *f[9] = { 0 };
    int k = 0;
    for (char *save = NULL, *t = strtok_r(line, "\t", &save); t && k < 9; t = strtok_r(NULL, "\t", &save)) f[k++] = t;
    if (k < 6) continue;
    struct probe *p = &probes[np];
    memset(p, 0, sizeof *p);
    p->fd = p->lfd = p->cfd = -1;
    p->ns2 = -1;
    snprintf(p->id, sizeof p->id, "%s", f[0]);
    p->kind = !strcmp(f[1], "ping") ? 0 : !strcmp(f[1], "tcp") ? 1 : !strcmp(f[1], "dns") ? 3 : !strcmp(f[1], "throughput") ? 4 : 2;
    // The namespaces: the source's, and a throughput receiver's.
    const char *names[2] = { f[2], p->kind == 4 && k > 6 ? f[6] : NULL };
    int idx[2] = { -1, -1 }, full = 0;
    for (int e = 0; e < 2 && names[e]; e++) {
      int j;
      for (j = 0; j < nns && strcmp(ns_names[j], names[e]); j++) {}
      if (j == nns) { if (nns == 4096) { full = 1; break; } ns_names[nns] = strdup(names[e]); ns_icmp[nns] = -1; nns++; }
      idx[e] = j;
    }
    if (full) continue;
    p->ns = idx[0];
    p->ns2 = idx[1];
    if (p->kind == 3) {
      p->timeout_us = atoll(f[4]) * 1000;
      p->try_us = k > 6 ? atoll(f[6]) * 1000 : p->timeout_us;
      p->attempts = k > 7 ? atoi(f[7]) : 1;
      if (p->try_us < 1000) p->try_us = 1000;
      if (p->attempts < 1) p->attempts = 1;
      int bad = 0;
      for (char *save = NULL, *t = strtok_r(f[3], ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (p->nservers == DNS_SERVERS) break;
        if (inet_pton(AF_INET, t, &p->servers[p->nservers++]) != 1) bad = 1;
      }
      np++;
      if (bad || !p->nservers) dns_fail(p, "error", "bad server address");
      else if (k < 6 || dns_encode(f[5], p->qname, &p->qname_len) < 0) dns_fail(p, "error", "bad name");
      continue;
    }
    if (inet_pton(AF_INET, f[3], &p->addr) != 1) { np++; finish(p, 0, "bad address"); continue; }
    if (p->kind == 0) {
      p->count = atoi(f[4]);
      p->timeout_us = atoll(f[5]) * 1000;
      p->interval_us = k > 6 ? atoll(f[6]) * 1000 : 10000;
      if (p->count < 1) p->count = 1;
      if (p->count > 100000) p->count = 100000;
      p->sent_rt = calloc(p->count, sizeof *p->sent_rt);
      p->answered = calloc(p->count, 1);
      if (!p->sent_rt || !p->answered) die("out of memory");
    } else {
      p->port = atoi(f[4]);
      p->timeout_us = atoll(f[5]) * 1000;
    }
    if (p->kind == 2) {
      snprintf(p->host, sizeof p->host, "%s", k > 6 ? f[6] : f[3]);
      snprintf(p->path, sizeof p->path, "%s", k > 7 ? f[7] : "/");
    }
    np++;
    if (p->kind == 4) {
      p->dur_us = k > 7 ? atoll(f[7]) * 1000 : 0;
      if (p->ns2 < 0 || p->dur_us <= 0) finish(p, 0, "bad throughput probe");
    }
  }
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die("open own netns");
  // Sockets made inside each namespace, one window per namespace.
  for (int j = 0; j < nns; j++) {
    int fd = -1;
    if (strcmp(ns_names[j], "-")) {
      fd = open(ns_names[j], O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        for (int i = 0; i < np; i++) {
          if (probes[i].ns == j) finish(&probes[i], 0, "namespace missing");
          else if (probes[i].ns2 == j) finish(&probes[i], 0, "receiver's namespace missing");
        }
        if (fd >= 0) close(fd);
        continue;
      }
    }
    int need_icmp = 0;
    for (int i = 0; i < np; i++) {
      struct probe *p = &probes[i];
      if (p->done) continue;
      if (p->kind == 4 && p->ns2 == j) throughput_listen(p);
      if (p->ns != j || p->done) continue;
      if (p->kind == 0) { need_icmp = 1; continue; }
      p->fd = socket(AF_INET, (p->kind == 3 ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (p->fd < 0) { finish(p, 0, "socket failed"); continue; }
    }
    if (need_icmp) {
      ns_icmp[j] = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
      if (ns_icmp[j] >= 0) icmp_socket_setup(ns_icmp[j], probes, np, j);
    }
    if (fd >= 0) { if (setns(home, CLONE_NEWNET) < 0) die("return to own netns"); close(fd); }
  }
  unsigned short ident = (unsigned short)(getpid() & 0xffff);
  long long t0 = now_us();
  for (int i = 0; i < np; i++) {
    struct probe *p = &probes[i];
    if (p->done) continue;
    p->start_us = t0;
    if (p->kind == 0) {
      if (ns_icmp[p->ns] < 0) { finish(p, 0, "no ICMP socket"); continue; }
      send_ping(p, ns_icmp[p->ns], i, ident);
    } else if (p->kind == 3) {
      dns_send(p);
    } else {
      struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(p->port), .sin_addr = p->addr };
      if (connect(p->fd, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS) {
        char why[128]; snprintf(why, sizeof why, "connect: %s", strerror(errno)); finish(p, 0, why);
        continue;
      }
      // The source address and port are chosen by connect() itself: the receiver knows the
      // sender's connection by them.
      socklen_t ll = sizeof p->local;
      if (p->kind == 4 && getsockname(p->fd, (struct sockaddr *)&p->local, &ll) < 0) finish(p, 0, "getsockname failed");
    }
  }
  struct pollfd *pfd = calloc(3 * np + nns, sizeof *pfd);
  int *owner = calloc(3 * np + nns, sizeof(int));
  int *role = calloc(3 * np + nns, sizeof(int)); // throughput: 0 sender, 1 listener, 2 receiver
  if (!pfd || !owner || !role) die("out of memory");
  for (;;) {
    long long now = now_us();
    long long wake = now + 20000; // when the loop must look again at the latest
    int pending = 0, n = 0;
    for (int i = 0; i < np; i++) {
      struct probe *p = &probes[i];
      if (p->done) continue;
      if (p->kind == 0) {
        // COUNT requests, INTERVAL apart; then replies until TIMEOUT after the last.
        if (p->sent < p->count) {
          if (now - p->last_send_us >= p->interval_us) send_ping(p, ns_icmp[p->ns], i, ident);
          if (p->done) continue;
          long long next = p->sent < p->count ? p->last_send_us + p->interval_us : p->last_send_us + p->timeout_us;
          if (next < wake) wake = next;
        } else if (now - p->last_send_us >= p->timeout_us) {
          finish_ping(p);
          continue;
        } else if (p->last_send_us + p->timeout_us < wake) wake = p->last_send_us + p->timeout_us;
        pending++;
        continue;
      }
      if (p->kind == 4) {
        long long until = p->window_start_us ? p->window_start_us + p->dur_us : p->start_us + p->timeout_us;
        if (now >= until) {
          if (p->window_start_us) throughput_done(p, now);
          else finish(p, 0, "timeout");
          continue;
        }
        if (until < wake) wake = until;
        pending++;
        pfd[n].fd = p->fd; pfd[n].events = POLLOUT; owner[n] = i; role[n++] = 0;
        if (p->lfd >= 0) { pfd[n].fd = p->lfd; pfd[n].events = POLLIN; owner[n] = i; role[n++] = 1; }
        if (p->cfd >= 0) { pfd[n].fd = p->cfd; pfd[n].events = POLLIN; owner[n] = i; role[n++] = 2; }
        continue;
      }
      if (now - p->start_us >= p->timeout_us) {
        if (p->kind == 3) { if (p->sent) p->waited = 1; dns_give_up(p); }
        else finish(p, 0, p->req_sent ? "no response" : "timeout");
        continue;
      }
      // dns: this try ran its time; the next server, or the next round.
      if (p->kind == 3 && now >= p->try_end_us) {
        p->waited = 1;
        if (dns_next_server(p)) dns_send(p); else dns_give_up(p);
        if (p->done) continue;
      }
      pending++;
      if (p->fd >= 0) {
        pfd[n].fd = p->fd;
        pfd[n].events = (p->kind == 2 && p->req_sent) || p->kind == 3 ? POLLIN : POLLOUT;
        owner[n] = i; role[n++] = 0;
      }
    }
    if (!pending) break;
    for (int j = 0; j < nns; j++) if (ns_icmp[j] >= 0) { pfd[n].fd = ns_icmp[j]; pfd[n].events = POLLIN; owner[n++] = -1 - j; }
    long long left = wake - now_us();
    int r = poll(pfd, n, left <= 0 ? 0 : (int)((left + 999) / 1000));
    if (r < 0 && errno != EINTR) die("poll");
    for (int q = 0; r > 0 && q < n; q++) {
      if (!pfd[q].revents) continue;
      if (owner[q] < 0) {
        unsigned char buf[1500];
        char ctl[256];
        struct sockaddr_in from;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
        struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
        ssize_t len;
        while ((len = recvmsg(pfd[q].fd, &mh, 0)) > 0) {
          long long recv_rt = 0;
          for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
              struct timespec ts;
              memcpy(&ts, CMSG_DATA(c), sizeof ts);
              recv_rt = ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
            }
          }
          if (!recv_rt) recv_rt = realtime_us();
          mh.msg_namelen = sizeof from;
          mh.msg_controllen = sizeof ctl;
          struct iphdr *ip = (struct iphdr *)buf;
          int hl = ip->ihl * 4;
          if (len < hl + (int)sizeof(struct icmphdr) + (int)sizeof(struct ping_payload)) continue;
          struct icmphdr *h = (struct icmphdr *)(buf + hl);
          if (h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != ident) continue;
          struct ping_payload b;
          memcpy(&b, buf + hl + sizeof *h, sizeof b);
          if (memcmp(b.magic, PING_MAGIC, 8) || b.index >= (unsigned int)np) continue;
          struct probe *p = &probes[b.index];
          if (p->kind == 0 && !p->done && p->ns == -1 - owner[q] && p->addr.s_addr == from.sin_addr.s_addr)
            ping_reply(p, b.seq, ntohs(h->un.echo.sequence), recv_rt);
        }
        continue;
      }
      struct probe *p = &probes[owner[q]];
      if (p->done) continue;
      if (p->kind == 4) {
        if (role[q] == 0) throughput_send(p);
        else if (role[q] == 1) throughput_accept(p);
        else throughput_receive(p);
        continue;
      }
      if (p->kind == 3) { dns_receive(p); continue; }
      if (!p->req_sent) {
        int soerr = 0; socklen_t sl = sizeof soerr;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) { char why[128]; snprintf(why, sizeof why, "connect: %s", strerror(soerr)); finish(p, 0, why); continue; }
        if (p->kind == 1) { char d[64]; snprintf(d, sizeof d, "%lld", now_us() - p->start_us); finish(p, 1, d); continue; }
        char req[2048];
        int rl = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: netlab-check\r\nConnection: close\r\n\r\n", p->path, p->host);
        if (write(p->fd, req, rl) != rl) { finish(p, 0, "request write failed"); continue; }
        p->req_sent = 1;
        p->resp = malloc(BODY_MAX + 4096);
        continue;
      }
      ssize_t got = read(p->fd, p->resp + p->resp_len, BODY_MAX + 4096 - p->resp_len);
      if (got > 0) { p->resp_len += got; if (p->resp_len < BODY_MAX + 4096) continue; }
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got < 0 && !p->resp_len) { char why[128]; snprintf(why, sizeof why, "read: %s", strerror(errno)); finish(p, 0, why); continue; }
      // Response complete (EOF) or large enough: status code, then the body as hex.
      p->resp[p->resp_len] = 0;
      int status = 0;
      if (sscanf(p->resp, "HTTP/%*d.%*d %d", &status) != 1) { finish(p, 0, "not an HTTP response"); continue; }
      char *body = strstr(p->resp, "\r\n\r\n");
      body = body ? body + 4 : p->resp + p->resp_len;
      size_t bl = p->resp + p->resp_len - body;
      if (bl > BODY_MAX) bl = BODY_MAX;
      char *d = malloc(16 + bl * 2 + 1);
      int off = snprintf(d, 16, "%d\t", status);
      for (size_t b = 0; b < bl; b++) off += snprintf(d + off, 3, "%02x", (unsigned char)body[b]);
      finish(p, 1, d);
      free(d);
    }
    fflush(stdout);
  }
  fflush(stdout);
  return 0;
}

// ---------------------------------------------------------------- capture
//
// netlab-shim capture NETNS IFACE COUNT [TERM...]
//   NETNS is a /run/netns path or '-' (the shim's own namespace). Opens an AF_PACKET socket in
//   that namespace bound to IFACE (frames in both directions) and writes pcap to stdout
//   (libpcap's format, LINKTYPE_ETHERNET, microsecond timestamps from the kernel): the global
//   header at once, then every frame that matches all TERMs (icmp, tcp, udp, arp, host=A.B.C.D,
//   port=N: see cap_match), until COUNT frames were written (0: no limit), SIGINT, SIGTERM or
//   SIGHUP, or stdout is closed. "listening on IFACE" on stderr once bound, "N packets
//   captured" at the end.

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <stdint.h>

#define CAP_SNAPLEN 262144
#define CAP_TERMS 32

enum { T_ICMP, T_TCP, T_UDP, T_ARP, T_HOST, T_PORT };
struct cap_term { int kind; unsigned char addr[4]; int port; };

/** Whether an Ethernet frame matches every term (tcpdump's meaning, IPv4 only): icmp/tcp/udp
 *  the IPv4 protocol; arp the ARP ethertype; host an IPv4 source or destination, or an ARP
 *  sender or target address; port a TCP or UDP source or destination port of an unfragmented
 *  (or first-fragment) IPv4 packet. */
static int cap_match(const unsigned char *f, size_t len, const struct cap_term *t, int nt) {
  int et = len >= 14 ? (f[12] << 8 | f[13]) : -1;
  const unsigned char *ip = f + 14;
  size_t iplen = len >= 14 ? len - 14 : 0;
  int is_ip = et == 0x0800 && iplen >= 20 && (ip[0] >> 4) == 4;
  size_t ihl = is_ip ? (size_t)(ip[0] & 15) * 4 : 0;
  if (is_ip && (ihl < 20 || ihl > iplen)) is_ip = 0;
  int proto = is_ip ? ip[9] : -1;
  int first_frag = is_ip && ((ip[6] & 0x1f) << 8 | ip[7]) == 0;
  int is_arp = et == 0x0806 && iplen >= 28 && ip[4] == 6 && ip[5] == 4 && (ip[2] << 8 | ip[3]) == 0x0800;
  for (int i = 0; i < nt; i++) {
    const struct cap_term *x = &t[i];
    int ok = 0;
    switch (x->kind) {
      case T_ICMP: ok = proto == 1; break;
      case T_TCP: ok = proto == 6; break;
      case T_UDP: ok = proto == 17; break;
      case T_ARP: ok = et == 0x0806; break;
      case T_HOST:
        ok = (is_ip && (!memcmp(ip + 12, x->addr, 4) || !memcmp(ip + 16, x->addr, 4)))
          || (is_arp && (!memcmp(ip + 14, x->addr, 4) || !memcmp(ip + 24, x->addr, 4)));
        break;
      case T_PORT:
        if ((proto == 6 || proto == 17) && first_frag && iplen >= ihl + 4) {
          int sp = ip[ihl] << 8 | ip[ihl + 1], dp = ip[ihl + 2] << 8 | ip[ihl + 3];
          ok = sp == x->port || dp == x->port;
        }
        break;
    }
    if (!ok) return 0;
  }
  return 1;
}

static volatile sig_atomic_t cap_stop;
static void cap_on_signal(int sig) { (void)sig; cap_stop = 1; }

/** write() all of it; 0 on success, -1 when the reader is gone (EPIPE) or on another error. */
static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w; n -= (size_t)w;
  }
  return 0;
}

static int capture_main(const char *netns, const char *iface, long count, int nterms, char **terms) {
  struct cap_term t[CAP_TERMS];
  int nt = 0;
  for (int i = 0; i < nterms; i++) {
    if (nt == CAP_TERMS) { fprintf(stderr, "netlab-shim: capture: at most %d filter terms\n", CAP_TERMS); return 2; }
    struct cap_term *x = &t[nt++];
    memset(x, 0, sizeof *x);
    const char *a = terms[i];
    if (!strcmp(a, "icmp")) x->kind = T_ICMP;
    else if (!strcmp(a, "tcp")) x->kind = T_TCP;
    else if (!strcmp(a, "udp")) x->kind = T_UDP;
    else if (!strcmp(a, "arp")) x->kind = T_ARP;
    else if (!strncmp(a, "host=", 5) && inet_pton(AF_INET, a + 5, x->addr) == 1) x->kind = T_HOST;
    else if (!strncmp(a, "port=", 5) && atoi(a + 5) > 0 && atoi(a + 5) < 65536) { x->kind = T_PORT; x->port = atoi(a + 5); }
    else { fprintf(stderr, "netlab-shim: capture: bad filter term %s\n", a); return 2; }
  }
  // netlab's CLI waits for it: when that process is killed, the capture ends too.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (strcmp(netns, "-")) {
    int fd = open(netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open netns %s", netns);
    if (setns(fd, CLONE_NEWNET) < 0) die("join netns %s", netns);
    close(fd);
  }
  // Protocol 0 receives nothing until bound: no frame of another interface slips in first.
  int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (s < 0) die("packet socket");
  unsigned idx = if_nametoindex(iface);
  if (idx == 0) die("interface %s", iface);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
  if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) die("interface %s", iface);
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER && ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK) {
    errno = EPROTONOSUPPORT;
    die("interface %s is not an Ethernet interface (link type %d)", iface, ifr.ifr_hwaddr.sa_family);
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)idx;
  if (bind(s, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind to %s", iface);
  int on = 1, rcvbuf = 4 << 20;
  if (setsockopt(s, SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on) < 0) die("SO_TIMESTAMP");
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  // Signals are blocked except inside ppoll: a stop request is never lost between the check and
  // the wait.
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = cap_on_signal;
  sigset_t block, waitmask;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGHUP);
  sigprocmask(SIG_BLOCK, &block, &waitmask);
  sigdelset(&waitmask, SIGINT);
  sigdelset(&waitmask, SIGTERM);
  sigdelset(&waitmask, SIGHUP);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  struct { uint32_t magic; uint16_t major, minor; int32_t zone; uint32_t sigfigs, snaplen, linktype; } gh = { 0xa1b2c3d4, 2, 4, 0, 0, CAP_SNAPLEN, 1 };
  long n = 0;
  int closed = write_all(1, &gh, sizeof gh) < 0;
  if (!closed) fprintf(stderr, "listening on %s, link-type EN10MB (Ethernet), snapshot length %d bytes\n", iface, CAP_SNAPLEN);
  static unsigned char frame[CAP_SNAPLEN];
  char ctl[CMSG_SPACE(sizeof(struct timeval))];
  while (!closed && !cap_stop && (count == 0 || n < count)) {
    struct pollfd p[2] = { { .fd = s, .events = POLLIN }, { .fd = 1, .events = 0 } };
    int r = ppoll(p, 2, NULL, &waitmask);
    if (r < 0) { if (errno == EINTR) continue; die("poll"); }
    if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL)) break; // the reader is gone
    if (!(p[0].revents & POLLIN)) continue;
    struct iovec iov = { frame, sizeof frame };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
    ssize_t len = recvmsg(s, &m, MSG_TRUNC | MSG_DONTWAIT);
    if (len < 0) { if (errno == EINTR || errno == EAGAIN) continue; die("receive on %s", iface); }
    size_t caplen = (size_t)len < sizeof frame ? (size_t)len : sizeof frame;
    if (!cap_match(frame, caplen, t, nt)) continue;
    struct timeval tv = { 0, 0 };
    int have_ts = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMP) { memcpy(&tv, CMSG_DATA(c), sizeof tv); have_ts = 1; }
    }
    if (!have_ts) gettimeofday(&tv, NULL);
    uint32_t rh[4] = { (uint32_t)tv.tv_sec, (uint32_t)tv.tv_usec, (uint32_t)caplen, (uint32_t)len };
    struct iovec out[2] = { { rh, sizeof rh }, { frame, caplen } };
    // One writev per record, so a reader never sees half a record before the next one starts.
    size_t want = sizeof rh + caplen;
    ssize_t w = writev(1, out, 2);
    if (w < 0 && errno == EINTR) w = 0;
    if (w < 0) { closed = 1; break; }
    if ((size_t)w < want) {
      // A short write (a full pipe): finish the record from where it stopped.
      size_t done = (size_t)w;
      if (done < sizeof rh) { if (write_all(1, (char *)rh + done, sizeof rh - done) < 0) { closed = 1; break; } done = sizeof rh; }
      if (write_all(1, frame + (done - sizeof rh), caplen - (done - sizeof rh)) < 0) { closed = 1; break; }
    }
    n++;
  }
  fprintf(stderr, "%ld packet%s captured\n", n, n == 1 ? "" : "s");
  return 0;
}

// ---------------------------------------------------------------- cp: files in and out of a container
//
// netlab-shim cp-in PID DEST NAME    reads a tar stream (GNU or ustar format) on stdin
// netlab-shim cp-out PID SRC NAME    writes a tar stream (GNU format) on stdout
//   Both join the mount namespace of the container whose PID 1 is PID (host pid) first, and so
//   see its root as it does (the overlay root, its volumes): every path, and every symlink in
//   it, is resolved inside the container, never on the host. Nothing else of the container is
//   joined (its pid namespace, cgroups, user): this is netlab's root working on its files.
//   cp-in: when DEST is an existing directory, the stream's top entry is written as DEST/NAME;
//   otherwise the top entry becomes DEST (its parent must exist; a symlink at DEST is replaced,
//   not written through). Modes, owners (numeric) and mtimes of the stream are kept.
//   cp-out: SRC (a symlink at SRC is followed, inside the container) is streamed with its top
//   entry named NAME; directories recursively, symlinks as symlinks; sockets, fifos and device
//   nodes are skipped with a warning.

#include <dirent.h>
#include <libgen.h>
#include <limits.h>

#define TAR_BLOCK 512

static void enter_mnt(pid_t pid) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/ns/mnt", pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open %s (is the container running?)", p);
  if (setns(fd, CLONE_NEWNS) < 0) die("join the mount namespace of %d", pid);
  close(fd);
  if (chdir("/") < 0) die("chdir /");
}

static void tar_num(char *field, int width, unsigned long long v) {
  // Octal when it fits (width-1 digits), else GNU's base-256 (high bit of the first byte set).
  if (v < (1ULL << (3 * (width - 1)))) { snprintf(field, width, "%0*llo", width - 1, v); return; }
  memset(field, 0, width);
  field[0] = (char)0x80;
  for (int i = width - 1; i > 0 && v; i--, v >>= 8) field[i] = (char)(v & 0xff);
}

static unsigned long long tar_parse_num(const char *f, int width) {
  if ((unsigned char)f[0] & 0x80) {
    unsigned long long v = (unsigned char)f[0] & 0x7f;
    for (int i = 1; i < width; i++) v = v << 8 | (unsigned char)f[i];
    return v;
  }
  char buf[32];
  int n = 0;
  for (int i = 0; i < width && n < 31; i++) { if (f[i] >= '0' && f[i] <= '7') buf[n++] = f[i]; else if (n && (f[i] == ' ' || !f[i])) break; }
  buf[n] = 0;
  return strtoull(buf, NULL, 8);
}

static void tar_out(const void *buf, size_t n) {
  if (write_all(1, buf, n) < 0) die("write the tar stream");
}

static void tar_pad(unsigned long long size) {
  static const char zero[TAR_BLOCK];
  if (size % TAR_BLOCK) tar_out(zero, TAR_BLOCK - size % TAR_BLOCK);
}

static void tar_header_raw(const char *name, const char *link, char type, mode_t mode, uid_t uid, gid_t gid, unsigned long long size, time_t mtime) {
  char h[TAR_BLOCK];
  memset(h, 0, sizeof h);
  memcpy(h, name, strnlen(name, 100));
  tar_num(h + 100, 8, mode & 07777);
  tar_num(h + 108, 8, uid);
  tar_num(h + 116, 8, gid);
  tar_num(h + 124, 12, size);
  tar_num(h + 136, 12, mtime < 0 ? 0 : (unsigned long long)mtime);
  h[156] = type;
  if (link) memcpy(h + 157, link, strnlen(link, 100));
  memcpy(h + 257, "ustar  ", 8); // GNU magic and version
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < TAR_BLOCK; i++) sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  tar_out(h, sizeof h);
}

/** A header, preceded by GNU long-name ('L') and long-link ('K') records when needed. */
static void tar_header(const char *name, const char *link, char type, const struct stat *st, unsigned long long size) {
  if (strlen(name) >= 100) {
    tar_header_raw("././@LongLink", NULL, 'L', 0644, 0, 0, strlen(name) + 1, 0);
    tar_out(name, strlen(name) + 1);
    tar_pad(strlen(name) + 1);
  }
  if (link && strlen(link) >= 100) {
    tar_header_raw("././@LongLink", NULL, 'K', 0644, 0, 0, strlen(link) + 1, 0);
    tar_out(link, strlen(link) + 1);
    tar_pad(strlen(link) + 1);
  }
  tar_header_raw(name, link, type, st->st_mode, st->st_uid, st->st_gid, size, st->st_mtime);
}

static int cp_warnings;

/** Streams NAME (in directory DIRFD; AT_FDCWD and a path for the top) as ARC. Nothing is ever
 *  followed below the top: every open is O_NOFOLLOW and relative to its directory's fd. */
static void tar_entry(int dirfd, const char *name, const char *arc, int depth) {
  if (depth > 256) { errno = ELOOP; die("%s: directories nested too deep", arc); }
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) die("%s", arc);
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlinkat(dirfd, name, target, sizeof target - 1);
    if (n < 0) die("readlink %s", arc);
    target[n] = 0;
    tar_header(arc, target, '2', &st, 0);
    return;
  }
  if (S_ISREG(st.st_mode)) {
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) die("open %s", arc);
    if (fstat(fd, &st) < 0) die("stat %s", arc);
    if (!S_ISREG(st.st_mode)) { close(fd); fprintf(stderr, "netlab-shim: warning: %s changed while copied, skipped\n", arc); cp_warnings++; return; }
    unsigned long long size = (unsigned long long)st.st_size, done = 0;
    tar_header(arc, NULL, '0', &st, size);
    static char buf[1 << 16];
    while (done < size) {
      size_t want = size - done < sizeof buf ? (size_t)(size - done) : sizeof buf;
      ssize_t r = read(fd, buf, want);
      if (r < 0) { if (errno == EINTR) continue; die("read %s", arc); }
      if (r == 0) { memset(buf, 0, want); r = (ssize_t)want; } // shrank while read: pad to the size announced
      tar_out(buf, (size_t)r);
      done += (unsigned long long)r;
    }
    close(fd);
    tar_pad(size);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) die("open directory %s", arc);
    char dname[PATH_MAX];
    snprintf(dname, sizeof dname, "%s/", arc);
    tar_header(dname, NULL, '5', &st, 0);
    DIR *d = fdopendir(fd);
    if (!d) die("read directory %s", arc);
    // Names first (the directory stream's fd is needed for the openat of each entry).
    size_t cap = 64, k = 0;
    char **names = malloc(cap * sizeof *names);
    for (struct dirent *e; (e = readdir(d)); ) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      if (k == cap) { cap *= 2; names = realloc(names, cap * sizeof *names); }
      names[k++] = strdup(e->d_name);
    }
    for (size_t i = 0; i < k; i++) {
      char child[PATH_MAX];
      if ((size_t)snprintf(child, sizeof child, "%s/%s", arc, names[i]) >= sizeof child) { errno = ENAMETOOLONG; die("%s/%s", arc, names[i]); }
      tar_entry(fd, names[i], child, depth + 1);
      free(names[i]);
    }
    free(names);
    closedir(d);
    return;
  }
  fprintf(stderr, "netlab-shim: warning: %s is not a regular file, directory or symlink, skipped\n", arc);
  cp_warnings++;
}

static int cp_out(pid_t pid, const char *src, const char *name) {
  enter_mnt(pid);
  char real[PATH_MAX];
  if (!realpath(src, real)) die("%s", src);
  tar_entry(AT_FDCWD, real, name, 0);
  static const char end[2 * TAR_BLOCK];
  tar_out(end, sizeof end);
  return 0;
}

static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0) { if (errno == EINTR) continue; die("read the tar stream"); }
    if (r == 0) break;
    got += (size_t)r;
  }
  return (int)got;
}

static char *tar_read_string(unsigned long long size) {
  if (size > PATH_MAX * 4) { errno = ENAMETOOLONG; die("tar stream: a name of %llu bytes", size); }
  unsigned long long padded = (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
  char *s = calloc(1, padded + 1);
  if (read_full(0, s, padded) != (int)padded) { errno = EIO; die("tar stream ends inside a name"); }
  s[size] = 0;
  return s;
}

static void tar_skip(unsigned long long size) {
  char buf[TAR_BLOCK];
  for (unsigned long long left = (size + TAR_BLOCK - 1) / TAR_BLOCK; left > 0; left--) {
    if (read_full(0, buf, TAR_BLOCK) != TAR_BLOCK) { errno = EIO; die("tar stream ends inside an entry"); }
  }
}

/** The path an entry is written to: BASE, the top component replaced by TOP, the rest kept;
 *  "." components dropped; "..", or anything that is not a plain relative name, refused. */
static void map_name(const char *raw, const char *base, const char *top, char *out, size_t n) {
  char tmp[PATH_MAX * 2];
  snprintf(tmp, sizeof tmp, "%s", raw);
  char rel[PATH_MAX * 2] = "";
  int first = 1;
  for (char *save = NULL, *c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".")) continue;
    if (!strcmp(c, "..")) { errno = EPERM; die("tar stream: entry %s leaves its directory", raw); }
    size_t l = strlen(rel);
    snprintf(rel + l, sizeof rel - l, "%s%s", l ? "/" : "", first ? top : c);
    first = 0;
  }
  if (!*rel) { out[0] = 0; return; }
  if ((size_t)snprintf(out, n, "%s/%s", strcmp(base, "/") ? base : "", rel) >= n) { errno = ENAMETOOLONG; die("%s", rel); }
}

/** Removes what is at PATH unless it is a directory (tar's replace); a symlink is removed, never
 *  followed. */
static void clear_for(const char *path, int want_dir) {
  struct stat st;
  if (lstat(path, &st) < 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (!want_dir) { errno = EISDIR; die("cannot overwrite directory %s with a file", path); }
    return;
  }
  if (unlink(path) < 0) die("replace %s", path);
}

static int cp_in(pid_t pid, const char *dest, const char *name) {
  enter_mnt(pid);
  umask(0);
  char base[PATH_MAX];
  char top[NAME_MAX + 1];
  struct stat st;
  if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (!realpath(dest, base)) die("%s", dest);
    snprintf(top, sizeof top, "%s", name);
  } else {
    size_t dl = strlen(dest);
    if (dl && dest[dl - 1] == '/') { errno = ENOENT; die("directory %s", dest); }
    char d1[PATH_MAX], d2[PATH_MAX];
    snprintf(d1, sizeof d1, "%s", dest);
    snprintf(d2, sizeof d2, "%s", dest);
    const char *parent = dirname(d1), *leaf = basename(d2);
    if (!strcmp(leaf, ".") || !strcmp(leaf, "..") || !strcmp(leaf, "/")) { errno = EINVAL; die("destination %s", dest); }
    if (!realpath(parent, base)) die("%s", parent);
    if (stat(base, &st) < 0 || !S_ISDIR(st.st_mode)) { errno = ENOTDIR; die("%s", parent); }
    snprintf(top, sizeof top, "%s", leaf);
  }
  char *longname = NULL, *longlink = NULL;
  char h[TAR_BLOCK];
  int entries = 0;
  for (;;) {
    int got = read_full(0, h, TAR_BLOCK);
    if (got == 0) break;
    if (got != TAR_BLOCK) { errno = EIO; die("tar stream ends inside a header"); }
    int zero = 1;
    for (int i = 0; i < TAR_BLOCK && zero; i++) zero = !h[i];
    if (zero) break;
    unsigned sum = 0;
    for (int i = 0; i < TAR_BLOCK; i++) sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)h[i];
    if (sum != (unsigned)tar_parse_num(h + 148, 8)) { errno = EINVAL; die("not a tar stream (bad header checksum)"); }
    char type = h[156];
    unsigned long long size = tar_parse_num(h + 124, 12);
    if (type == 'L') { free(longname); longname = tar_read_string(size); continue; }
    if (type == 'K') { free(longlink); longlink = tar_read_string(size); continue; }
    if (type == 'x' || type == 'g') { tar_skip(size); continue; }
    char raw[PATH_MAX * 2];
    if (longname) snprintf(raw, sizeof raw, "%s", longname);
    else if (!memcmp(h + 257, "ustar\0", 6) && h[345]) snprintf(raw, sizeof raw, "%.155s/%.100s", h + 345, h);
    else snprintf(raw, sizeof raw, "%.100s", h);
    char link[PATH_MAX * 2];
    if (longlink) snprintf(link, sizeof link, "%s", longlink);
    else snprintf(link, sizeof link, "%.100s", h + 157);
    free(longname); free(longlink);
    longname = longlink = NULL;
    mode_t mode = (mode_t)tar_parse_num(h + 100, 8) & 07777;
    uid_t uid = (uid_t)tar_parse_num(h + 108, 8);
    gid_t gid = (gid_t)tar_parse_num(h + 116, 8);
    struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = (time_t)tar_parse_num(h + 136, 12) } };
    char path[PATH_MAX];
    map_name(raw, base, top, path, sizeof path);
    if (!*path) { tar_skip(size); continue; }
    entries++;
    if (type == '5') {
      if (mkdir(path, 0700) < 0) {
        if (errno != EEXIST) die("mkdir %s", path);
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) { clear_for(path, 1); if (mkdir(path, 0700) < 0) die("mkdir %s", path); }
      }
      if (lchown(path, uid, gid) < 0 || chmod(path, mode) < 0) die("set owner and mode of %s", path);
      tar_skip(size);
    } else if (type == '0' || type == '\0' || type == '7') {
      clear_for(path, 0);
      int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) die("create %s", path);
      static char buf[1 << 16];
      for (unsigned long long left = size; left > 0; ) {
        size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
        if (read_full(0, buf, want) != (int)want) { errno = EIO; die("tar stream ends inside %s", path); }
        if (write_all(fd, buf, want) < 0) die("write %s", path);
        left -= want;
      }
      if (size % TAR_BLOCK && read_full(0, buf, TAR_BLOCK - size % TAR_BLOCK) != (int)(TAR_BLOCK - size % TAR_BLOCK)) { errno = EIO; die("tar stream ends inside %s", path); }
      // Owner before mode: chown clears the set-id bits.
      if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) die("set owner and mode of %s", path);
      futimens(fd, times);
      if (close(fd) < 0) die("write %s", path);
    } else if (type == '2') {
      clear_for(path, 0);
      if (symlink(link, path) < 0) die("symlink %s", path);
      if (lchown(path, uid, gid) < 0) die("set owner of %s", path);
      utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW);
      tar_skip(size);
    } else if (type == '1') {
      char target[PATH_MAX];
      map_name(link, base, top, target, sizeof target);
      clear_for(path, 0);
      if (!*target || linkat(AT_FDCWD, target, AT_FDCWD, path, 0) < 0) die("hard link %s to %s", path, target);
      tar_skip(size);
    } else {
      fprintf(stderr, "netlab-shim: warning: %s: entry type '%c' not copied (only files, directories and links)\n", raw, type);
      cp_warnings++;
      tar_skip(size);
    }
  }
  // GNU tar writes whole records: read the rest so the writer does not get SIGPIPE.
  while (read_full(0, h, TAR_BLOCK) > 0) {}
  if (entries == 0) { errno = ENODATA; die("tar stream: nothing to copy"); }
  return 0;
}

int main(int argc, char **argv) {
  // Nothing the caller left open (without close-on-exec) may reach a container or the probe.
  close_fds_from(3, 0);
  if (argc == 2 && !strcmp(argv[1], "probe")) return probe_main();
  if (argc >= 3 && !strcmp(argv[1], "supervise")) return supervise(argv[2], argc - 3, argv + 3);
  if (argc >= 5 && !strcmp(argv[1], "exec")) {
    pid_t target = atoi(argv[2]);
    int tty = 0, i = 3;
    const char *user = NULL, *cwd = NULL, *seccomp = NULL;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
      if (!strcmp(argv[i], "-t")) tty = 1;
      else if (!strcmp(argv[i], "-s") && i + 1 < argc) seccomp = argv[++i];
      else if (!strcmp(argv[i], "-u") && i + 1 < argc) user = argv[++i];
      else if (!strcmp(argv[i], "-w") && i + 1 < argc) cwd = argv[++i];
    }
    if (i + 1 >= argc) { fprintf(stderr, "usage: netlab-shim exec PID [-t] [-u USER] [-w DIR] [-s SECCOMP] -- CMD ARGS...\n"); return 2; }
    return exec_in(target, tty, user, cwd, seccomp, argv + i + 1);
  }
  if (argc >= 5 && !strcmp(argv[1], "capture")) return capture_main(argv[2], argv[3], atol(argv[4]), argc - 5, argv + 5);
  if (argc == 5 && !strcmp(argv[1], "cp-in")) return cp_in(atoi(argv[2]), argv[3], argv[4]);
  if (argc == 5 && !strcmp(argv[1], "cp-out")) return cp_out(atoi(argv[2]), argv[3], argv[4]);
  fprintf(stderr, "usage: netlab-shim supervise LABDIR NODE... | exec PID [-t] [-u USER] [-w DIR] -- CMD ARGS... | probe | capture NETNS IFACE COUNT [TERM...] | cp-in PID DEST NAME | cp-out PID SRC NAME\n");
  return 2;
}

/** A container that exited takes its interfaces down with it, as Docker's do when a container
 *  stops (its namespace goes): its addresses stop answering and its cables' far ends lose
 *  carrier, which the prediction knows (an exited node is down). The namespace itself stays,
 *  for `status` and `down`. Best effort: nothing here may stop the supervisor. */
static void links_down(const char *labdir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s/spec", labdir, name);
  struct spec s;
  if (read_spec(p, &s) < 0) return;
  const char *ns = get(&s, "netns");
  if (!ns || !*ns) return; // network_mode host: the machine's own interfaces are not the node's
  int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = open(ns, O_RDONLY | O_CLOEXEC);
  if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0) {
    if (self >= 0) close(self);
    if (target >= 0) close(target);
    return;
  }
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct if_nameindex *ifs = if_nameindex();
  for (struct if_nameindex *i = ifs; sock >= 0 && i && i->if_index; i++) {
    if (!strcmp(i->if_name, "lo")) continue;
    struct ifreq r;
    memset(&r, 0, sizeof r);
    snprintf(r.ifr_name, sizeof r.ifr_name, "%s", i->if_name);
    if (ioctl(sock, SIOCGIFFLAGS, &r) < 0) continue;
    r.ifr_flags &= ~IFF_UP;
    ioctl(sock, SIOCSIFFLAGS, &r);
  }
  if (ifs) if_freenameindex(ifs);
  if (sock >= 0) close(sock);
  if (setns(self, CLONE_NEWNET) < 0) _exit(1); // never keep supervising from a lab namespace
  close(self);
  close(target);
}
