/*
 * vault-faults: an LD_PRELOAD shim that makes part of a file system misbehave,
 * below our code, for tests (built and driven by vault-faults.ts).
 *
 * Active only when CPD_FAULT_DIR names a control folder. A call is a candidate
 * when its path contains one of the ':'-separated substrings in
 * CPD_FAULT_MATCH; a path is tested with a '/' appended, so "/FileVault/journal/"
 * also matches the journal folder itself. For an fd the path is what
 * /proc/self/fd/N links to. Only then is the control file looked at (one
 * access(2)), so unrelated I/O costs a readlink and no more. Control files,
 * read on every call:
 *
 *   stall-writes  while present, write-family calls block (polled every 5 ms)
 *                 and then run as issued: the write lands late, at its offset.
 *                 Non-empty content narrows the stall to paths that also
 *                 contain it. Each stalled call appends its path to stalled.log.
 *   stall-next    decimal N: the next N write-family calls block (polled
 *                 every 5 ms) while stall-next-hold is present, then run as
 *                 issued; the calls after them do not wait. Logged like
 *                 stall-writes. (Two batches in flight, the first one held.)
 *   fail-reads    decimal N: the next N reads fail with EIO (N counts down).
 *   fail-opens    decimal N: the next N opens fail with EIO (N counts down).
 *   fail-syncs    decimal N: the next N fsyncs/fdatasyncs fail with EIO (N
 *                 counts down), as a storage error reported at sync time.
 *   slow-listing  decimal M: opendir/fdopendir/scandir sleep M ms first.
 *
 * Node 20 (libuv 1.46) reaches libc through open64, read, readv, pread64,
 * preadv64, write, writev, pwrite64, pwritev64, fsync, fdatasync, ftruncate64,
 * scandir64 (fs.readdir) and opendir (fs.opendir); the other names are here
 * for other programs and other glibc builds. libuv's io_uring path would bypass
 * libc entirely, so the child must run with UV_USE_IO_URING=0.
 *
 * Rules that keep the shim safe inside a multi-threaded process:
 *   - no recursion: the shim's own file I/O is raw syscall(2), and the libc
 *     calls it makes (access, readlink, getcwd, nanosleep, snprintf, strstr)
 *     are not interposed here;
 *   - errno is saved before the checks and restored before the real call, so
 *     a caller sees exactly the errno the real call (or the injected EIO) set;
 *   - counters are decremented under a pthread mutex (Node's thread pool calls
 *     from several threads) and flock(2) (several processes may share a folder).
 */
#undef _FORTIFY_SOURCE /* the fortified headers define open() inline; we define it */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define STALL_POLL_MS 5
#define MAX_MATCHES 16

typedef int (*dirent_filter)(const struct dirent *);
typedef int (*dirent_compare)(const struct dirent **, const struct dirent **);
typedef int (*dirent64_filter)(const struct dirent64 *);
typedef int (*dirent64_compare)(const struct dirent64 **, const struct dirent64 **);

/* Settings read once from the environment. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int active;
static char fault_dir[PATH_MAX - 64]; /* room left for "/stalled.log" in a PATH_MAX buffer */
static size_t fault_dir_len;
static char match_buf[4096];
static const char *matches[MAX_MATCHES];
static int match_count;

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;

/* The next definitions (libc's), resolved once. */
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pread64)(int, void *, size_t, off64_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_preadv)(int, const struct iovec *, int, off_t);
static ssize_t (*real_preadv64)(int, const struct iovec *, int, off64_t);
static ssize_t (*real_preadv2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_preadv64v2)(int, const struct iovec *, int, off64_t, int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off64_t, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static DIR *(*real_opendir)(const char *);
static DIR *(*real_fdopendir)(int);
static int (*real_scandir)(const char *, struct dirent ***, dirent_filter, dirent_compare);
static int (*real_scandir64)(const char *, struct dirent64 ***, dirent64_filter, dirent64_compare);

#define RESOLVE(name) (real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name))

static void init(void) {
  RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64);
  RESOLVE(__open_2); RESOLVE(__open64_2); RESOLVE(__openat_2); RESOLVE(__openat64_2);
  RESOLVE(read); RESOLVE(pread); RESOLVE(pread64); RESOLVE(readv);
  RESOLVE(preadv); RESOLVE(preadv64); RESOLVE(preadv2); RESOLVE(preadv64v2);
  RESOLVE(write); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(writev);
  RESOLVE(pwritev); RESOLVE(pwritev64); RESOLVE(pwritev2); RESOLVE(pwritev64v2);
  RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(ftruncate); RESOLVE(ftruncate64);
  RESOLVE(opendir); RESOLVE(fdopendir); RESOLVE(scandir); RESOLVE(scandir64);

  const char *dir = getenv("CPD_FAULT_DIR");
  const char *match = getenv("CPD_FAULT_MATCH");
  if (dir == NULL || dir[0] == '\0' || match == NULL) return;
  if (strlen(dir) >= sizeof fault_dir || strlen(match) >= sizeof match_buf) return;
  strcpy(fault_dir, dir);
  fault_dir_len = strlen(fault_dir);
  while (fault_dir_len > 1 && fault_dir[fault_dir_len - 1] == '/') fault_dir[--fault_dir_len] = '\0';
  strcpy(match_buf, match);
  for (char *part = match_buf, *next; part != NULL && match_count < MAX_MATCHES; part = next) {
    next = strchr(part, ':');
    if (next != NULL) *next++ = '\0';
    if (part[0] != '\0') matches[match_count++] = part; /* "a::b" has no empty match */
  }
  active = match_count > 0;
}

/* Resolve the real functions and settings; cheap after the first call. */
static inline void ensure_init(void) { pthread_once(&init_once, init); }

/* Whether `path` (with a '/' appended) contains `needle`. */
static int path_contains(const char *path, const char *needle) {
  char slashed[PATH_MAX + 2];
  size_t len = strnlen(path, PATH_MAX);
  memcpy(slashed, path, len);
  slashed[len] = '/';
  slashed[len + 1] = '\0';
  return strstr(slashed, needle) != NULL;
}

/* Whether faults apply to `path`: it matches, and it is not in the control folder. */
static int path_matches(const char *path) {
  if (strncmp(path, fault_dir, fault_dir_len) == 0 && (path[fault_dir_len] == '/' || path[fault_dir_len] == '\0')) return 0;
  for (int i = 0; i < match_count; i++)
    if (path_contains(path, matches[i])) return 1;
  return 0;
}

/* The path an fd is open on, from /proc/self/fd; -1 for none. */
static int fd_path(int fd, char *buf, size_t size) {
  char link[48];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, buf, size - 1);
  if (n < 0) return -1;
  buf[n] = '\0';
  return 0;
}

/* Whether the fd is open on a matching path. */
static int fd_matches(int fd) {
  char path[PATH_MAX];
  return fd_path(fd, path, sizeof path) == 0 && path_matches(path);
}

/* The absolute form of `path` as openat(dirfd, path) sees it (no symlinks resolved). */
static int absolute_path(int dirfd, const char *path, char *buf, size_t size) {
  if (path[0] == '/') return snprintf(buf, size, "%s", path) < (int)size ? 0 : -1;
  char base[PATH_MAX];
  if (dirfd == AT_FDCWD ? getcwd(base, sizeof base) == NULL : fd_path(dirfd, base, sizeof base) != 0) return -1;
  return snprintf(buf, size, "%s/%s", base, path) < (int)size ? 0 : -1;
}

static void control_path(const char *name, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", fault_dir, name);
}

/* One access(2): whether control file `name` exists. */
static int control_exists(const char *name) {
  char path[PATH_MAX];
  control_path(name, path, sizeof path);
  return access(path, F_OK) == 0;
}

/* Read control file `name` (raw syscalls), trimmed of surrounding whitespace; -1 when it is absent. */
static long control_read(const char *name, char *buf, size_t size) {
  char path[PATH_MAX];
  control_path(name, path, sizeof path);
  long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long n = syscall(SYS_read, (int)fd, buf, size - 1);
  syscall(SYS_close, (int)fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  char *start = buf;
  while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r') start++;
  size_t len = strlen(start);
  while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t' || start[len - 1] == '\n' || start[len - 1] == '\r')) len--;
  memmove(buf, start, len);
  buf[len] = '\0';
  return (long)len;
}

/* Control file `name` as a non-negative number (0 when absent or not a number). */
static long control_number(const char *name) {
  char text[32];
  if (control_read(name, text, sizeof text) <= 0) return 0;
  char *end;
  long value = strtol(text, &end, 10);
  return *end == '\0' && value > 0 ? value : 0;
}

/*
 * Take one from the counter in control file `name`: 1 if it was above zero
 * (and is now one less), else 0. The mutex orders threads of this process;
 * flock orders processes sharing the folder.
 */
static int control_take(const char *name) {
  char path[PATH_MAX], text[32];
  int taken = 0;
  control_path(name, path, sizeof path);
  pthread_mutex_lock(&counter_lock);
  long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    syscall(SYS_flock, (int)fd, LOCK_EX);
    long n = syscall(SYS_pread64, (int)fd, text, sizeof text - 1, 0L);
    if (n > 0) {
      text[n] = '\0';
      long count = strtol(text, NULL, 10);
      if (count > 0) {
        int len = snprintf(text, sizeof text, "%ld\n", count - 1);
        syscall(SYS_pwrite64, (int)fd, text, (size_t)len, 0L);
        syscall(SYS_ftruncate, (int)fd, (long)len);
        taken = 1;
      }
    }
    syscall(SYS_flock, (int)fd, LOCK_UN);
    syscall(SYS_close, (int)fd);
  }
  pthread_mutex_unlock(&counter_lock);
  return taken;
}

static void sleep_ms(long ms) {
  struct timespec left = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

/* Whether stall-writes (still) asks to stall writes to `path`. */
static int stall_applies(const char *path) {
  char narrower[PATH_MAX];
  long n = control_read("stall-writes", narrower, sizeof narrower);
  return n == 0 || (n > 0 && path_contains(path, narrower));
}

/* Note one stalled call in stalled.log (a single O_APPEND write, so lines from threads do not interleave). */
static void log_stall(const char *path) {
  char log[PATH_MAX], line[PATH_MAX + 2];
  control_path("stalled.log", log, sizeof log);
  int len = snprintf(line, sizeof line, "%s\n", path);
  if (len >= (int)sizeof line) len = (int)sizeof line - 1;
  long fd = syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) return;
  syscall(SYS_write, (int)fd, line, (size_t)len);
  syscall(SYS_close, (int)fd);
}

/* Before a write-family call on fd: block while stall-writes applies to it. */
static void before_write(int fd) {
  ensure_init();
  if (!active) return;
  int saved = errno;
  char path[PATH_MAX];
  if (fd_path(fd, path, sizeof path) == 0 && path_matches(path)) {
    if (control_exists("stall-writes") && stall_applies(path)) {
      log_stall(path);
      while (stall_applies(path)) sleep_ms(STALL_POLL_MS);
    } else if (control_exists("stall-next") && control_take("stall-next")) {
      log_stall(path);
      while (control_exists("stall-next-hold")) sleep_ms(STALL_POLL_MS);
    }
  }
  errno = saved;
}

/* Before a read-family call on fd: 1 (errno = EIO) if this read is to fail. */
static int read_fails(int fd) {
  ensure_init();
  if (!active) return 0;
  int saved = errno;
  int fail = fd_matches(fd) && control_exists("fail-reads") && control_take("fail-reads");
  errno = fail ? EIO : saved;
  return fail;
}

/* Before an fsync or fdatasync on fd: 1 (errno = EIO) if this sync is to fail. */
static int sync_fails(int fd) {
  ensure_init();
  if (!active) return 0;
  int saved = errno;
  int fail = fd_matches(fd) && control_exists("fail-syncs") && control_take("fail-syncs");
  errno = fail ? EIO : saved;
  return fail;
}

/* Before an open of dirfd/path: 1 (errno = EIO) if this open is to fail. */
static int open_fails(int dirfd, const char *path) {
  ensure_init();
  if (!active || path == NULL) return 0;
  int saved = errno;
  char full[PATH_MAX];
  int fail = absolute_path(dirfd, path, full, sizeof full) == 0 && path_matches(full) && control_exists("fail-opens") && control_take("fail-opens");
  errno = fail ? EIO : saved;
  return fail;
}

/* Before listing a folder: sleep slow-listing ms if it matches. */
static void before_listing(const char *path) {
  ensure_init();
  if (!active || path == NULL) return;
  int saved = errno;
  char full[PATH_MAX];
  if (absolute_path(AT_FDCWD, path, full, sizeof full) == 0 && path_matches(full) && control_exists("slow-listing")) {
    long ms = control_number("slow-listing");
    if (ms > 0) sleep_ms(ms);
  }
  errno = saved;
}

/* A real function missing from this libc (an old glibc without preadv2, say): fail as the kernel would. */
#define CALL(fn, fail, ...) (real_##fn != NULL ? real_##fn(__VA_ARGS__) : (errno = ENOSYS, (fail)))

/* open(2)'s mode argument is there only when the flags create a file. */
#define NEEDS_MODE(flags) (((flags) & O_CREAT) != 0 || ((flags) & O_TMPFILE) == O_TMPFILE)
#define TAKE_MODE(flags, mode)            \
  do {                                    \
    if (NEEDS_MODE(flags)) {              \
      va_list args;                       \
      va_start(args, flags);              \
      mode = (mode_t)va_arg(args, int);   \
      va_end(args);                       \
    }                                     \
  } while (0)

int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  TAKE_MODE(flags, mode);
  if (open_fails(AT_FDCWD, path)) return -1;
  return CALL(open, -1, path, flags, mode);
}

int open64(const char *path, int flags, ...) {
  mode_t mode = 0;
  TAKE_MODE(flags, mode);
  if (open_fails(AT_FDCWD, path)) return -1;
  return CALL(open64, -1, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
  mode_t mode = 0;
  TAKE_MODE(flags, mode);
  if (open_fails(dirfd, path)) return -1;
  return CALL(openat, -1, dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
  mode_t mode = 0;
  TAKE_MODE(flags, mode);
  if (open_fails(dirfd, path)) return -1;
  return CALL(openat64, -1, dirfd, path, flags, mode);
}

/* The _FORTIFY_SOURCE entry points a fortified program calls instead of open(). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

int __open_2(const char *path, int flags) {
  if (open_fails(AT_FDCWD, path)) return -1;
  return CALL(__open_2, -1, path, flags);
}

int __open64_2(const char *path, int flags) {
  if (open_fails(AT_FDCWD, path)) return -1;
  return CALL(__open64_2, -1, path, flags);
}

int __openat_2(int dirfd, const char *path, int flags) {
  if (open_fails(dirfd, path)) return -1;
  return CALL(__openat_2, -1, dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags) {
  if (open_fails(dirfd, path)) return -1;
  return CALL(__openat64_2, -1, dirfd, path, flags);
}

ssize_t read(int fd, void *buf, size_t count) {
  if (read_fails(fd)) return -1;
  return CALL(read, -1, fd, buf, count);
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset) {
  if (read_fails(fd)) return -1;
  return CALL(pread, -1, fd, buf, count, offset);
}

ssize_t pread64(int fd, void *buf, size_t count, off64_t offset) {
  if (read_fails(fd)) return -1;
  return CALL(pread64, -1, fd, buf, count, offset);
}

ssize_t readv(int fd, const struct iovec *iov, int iovcnt) {
  if (read_fails(fd)) return -1;
  return CALL(readv, -1, fd, iov, iovcnt);
}

ssize_t preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
  if (read_fails(fd)) return -1;
  return CALL(preadv, -1, fd, iov, iovcnt, offset);
}

ssize_t preadv64(int fd, const struct iovec *iov, int iovcnt, off64_t offset) {
  if (read_fails(fd)) return -1;
  return CALL(preadv64, -1, fd, iov, iovcnt, offset);
}

ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
  if (read_fails(fd)) return -1;
  return CALL(preadv2, -1, fd, iov, iovcnt, offset, flags);
}

ssize_t preadv64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags) {
  if (read_fails(fd)) return -1;
  return CALL(preadv64v2, -1, fd, iov, iovcnt, offset, flags);
}

ssize_t write(int fd, const void *buf, size_t count) {
  before_write(fd);
  return CALL(write, -1, fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
  before_write(fd);
  return CALL(pwrite, -1, fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
  before_write(fd);
  return CALL(pwrite64, -1, fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
  before_write(fd);
  return CALL(writev, -1, fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
  before_write(fd);
  return CALL(pwritev, -1, fd, iov, iovcnt, offset);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t offset) {
  before_write(fd);
  return CALL(pwritev64, -1, fd, iov, iovcnt, offset);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
  before_write(fd);
  return CALL(pwritev2, -1, fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags) {
  before_write(fd);
  return CALL(pwritev64v2, -1, fd, iov, iovcnt, offset, flags);
}

int fsync(int fd) {
  before_write(fd);
  if (sync_fails(fd)) return -1;
  return CALL(fsync, -1, fd);
}

int fdatasync(int fd) {
  before_write(fd);
  if (sync_fails(fd)) return -1;
  return CALL(fdatasync, -1, fd);
}

int ftruncate(int fd, off_t length) {
  before_write(fd);
  return CALL(ftruncate, -1, fd, length);
}

int ftruncate64(int fd, off64_t length) {
  before_write(fd);
  return CALL(ftruncate64, -1, fd, length);
}

DIR *opendir(const char *path) {
  before_listing(path);
  return CALL(opendir, NULL, path);
}

DIR *fdopendir(int fd) {
  ensure_init();
  if (active) {
    int saved = errno;
    char path[PATH_MAX];
    if (fd_path(fd, path, sizeof path) == 0) before_listing(path);
    errno = saved;
  }
  return CALL(fdopendir, NULL, fd);
}

int scandir(const char *path, struct dirent ***names, dirent_filter filter, dirent_compare compare) {
  before_listing(path);
  return CALL(scandir, -1, path, names, filter, compare);
}

int scandir64(const char *path, struct dirent64 ***names, dirent64_filter filter, dirent64_compare compare) {
  before_listing(path);
  return CALL(scandir64, -1, path, names, filter, compare);
}
