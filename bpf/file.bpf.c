/* Files: FileCreate (Sysmon 11), RawAccessRead (9), FileDelete (23), FileCreateTime (2).
 *
 * Some facts about these hooks:
 *  - Whether an open created the file is the kernel's own answer: it sets FMODE_CREATED on the
 *    struct file when this very open made the inode. So creat(), open/openat/openat2 with
 *    O_CREAT that created the file are reported, and O_CREAT on an existing file never is
 *    (upstream guesses from inode timestamps, its issue #182).
 *  - The path is the new file's f_path walked in the kernel: absolute whatever dirfd or cwd
 *    the process used, and not what the process claims.
 *  - unlink's name is gone from the kernel once the syscall returns, so it is read from the
 *    syscall's argument (user memory) at exit; the directory it is relative to (cwd or dirfd)
 *    comes from kernel data.
 */
#include "common.h"

#define FMODE_READ 0x1
#define FMODE_CREATED (1 << 20)
#define S_IFMT 00170000
#define S_IFBLK 0060000
#define S_IFDIR 0040000
#define AT_FDCWD -100

_Static_assert(sizeof(struct rec_file_create) == sizeof(struct rec_raw_access), "same layout");

static __always_inline int on_open_exit(long ret, int may_be_raw)
{
    if (ret < 0)
        return 0;
    int want_create = kind_enabled(KIND_FILE_CREATE);
    int want_raw = may_be_raw && kind_enabled(KIND_RAW_ACCESS);
    if (!want_create && !want_raw)
        return 0;
    struct sysmon_offsets *o = get_offsets();
    struct scratch_buf *s = get_scratch();
    if (!o || !s)
        return 0;
    void *task = (void *)bpf_get_current_task();
    void *file = fd_file(o, task, ret);
    if (!file)
        return 0;
    __u32 fmode = read_u32(file, o->file_f_mode, 0);
    __u32 kind;
    if (want_create && (fmode & FMODE_CREATED)) {
        kind = KIND_FILE_CREATE;
    } else if (want_raw && (fmode & FMODE_READ)) {
        __u16 mode = read_u16(read_ptr(file, o->file_f_inode), o->inode_mode);
        if ((mode & S_IFMT) != S_IFBLK)
            return 0;
        kind = KIND_RAW_ACCESS;
    } else {
        return 0;
    }
    struct rec_file_create *r = (void *)s->data;
    __u64 id = bpf_get_current_pid_tgid();
    fill_header(r, kind, id >> 32, (__u32)id);
    r->uid = current_uid(o, task);
    r->fd = ret;
    walk_path(o, (char *)file + o->file_f_path, s->data + sizeof(*r), &r->path_len, &r->flags,
              REC_F_PATH_TRUNC);
    __u32 len = r->path_len;
    if (len > PATH_MAX_BYTES)
        len = PATH_MAX_BYTES;
    r->size = sizeof(*r) + len;
    submit(r, sizeof(*r) + len, kind);
    return 0;
}

/* format: int __syscall_nr; long ret; */
TRACEPOINT_PROBE(syscalls, sys_exit_openat) { return on_open_exit(args->ret, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_open) { return on_open_exit(args->ret, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_openat2) { return on_open_exit(args->ret, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_creat) { return on_open_exit(args->ret, 0); }

/* The inode an unlink in progress removes, per thread (filled by on_ctime_update below), read
 * while the call still holds it: by the exit hook it may be freed. ino 0: not seen. */
struct victim {
    __u64 ino;
    __u64 ctime;
    __u32 dev;
    __u32 mode;
};
BPF_HASH(unlink_victim, __u64, struct victim, 4096);

static __always_inline int stash_unlink(const char *pathname, long dfd)
{
    if (!kind_enabled(KIND_FILE_DELETE))
        return 0;
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v = {(__u64)pathname, (__u64)dfd, 0, 0};
    struct victim none = {};
    __u32 kind = KIND_FILE_DELETE;
    if (stash.update(&tid, &v) ||
        (kind_enabled(SWITCH_UNLINKED_INODE) && unlink_victim.update(&tid, &none)))
        count(drops.lookup(&kind)); /* maps full (threads parked in the call): a counted loss */
    return 0;
}

/* format: int dfd; const char *pathname; int flag; */
TRACEPOINT_PROBE(syscalls, sys_enter_unlinkat) { return stash_unlink(args->pathname, args->dfd); }
/* format: const char *pathname; */
TRACEPOINT_PROBE(syscalls, sys_enter_unlink) { return stash_unlink(args->pathname, AT_FDCWD); }

/* The name a syscall got (user memory, read now) into tail, and when it is relative, the
 * directory it is relative to walked from kernel data (cwd, or the file behind dfd) after it.
 * A NULL name (futimens, futimes) leaves only the dfd's own path. 0, or -1 if unreadable. */
static __always_inline int name_and_base(struct sysmon_offsets *o, void *task, __u8 *tail, __u64 uname,
                                         int dfd, __u16 *name_len, __u16 *base_len, __u16 *flags)
{
    long n = 1;
    tail[0] = 0;
    if (uname)
        n = bpf_probe_read_user_str(tail, PATH_MAX_BYTES, (void *)uname);
    if (n <= 0)
        return -1;
    __u32 len = n - 1; /* without the NUL */
    if (len > PATH_MAX_BYTES)
        len = PATH_MAX_BYTES;
    *name_len = len;
    *base_len = 0;
    if (tail[0] != '/') {
        void *path = 0;
        if (dfd == AT_FDCWD) {
            void *fs = read_ptr(task, o->task_fs);
            path = fs ? (char *)fs + o->fs_pwd : 0;
        } else {
            void *dir = fd_file(o, task, dfd);
            path = dir ? (char *)dir + o->file_f_path : 0;
        }
        if (path)
            walk_path(o, path, tail + len, base_len, flags, REC_F_PATH_TRUNC);
    }
    return 0;
}

/* Record size for a name and base tail, clamped for the verifier. */
static __always_inline __u32 named_size(__u32 fixed, __u32 name_len, __u32 base_len)
{
    if (name_len > PATH_MAX_BYTES)
        name_len = PATH_MAX_BYTES;
    if (base_len > PATH_MAX_BYTES)
        base_len = PATH_MAX_BYTES;
    __u32 size = fixed + name_len + base_len;
    return size > SCRATCH_SIZE ? SCRATCH_SIZE : size;
}

static __always_inline int on_unlink_exit(long ret)
{
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v;
    if (!stash_take(tid, &v))
        return 0;
    struct victim seen = {};
    struct victim *victim = unlink_victim.lookup(&tid);
    if (victim)
        seen = *victim;
    unlink_victim.delete(&tid);
    if (ret != 0)
        return 0;
    struct sysmon_offsets *o = get_offsets();
    struct scratch_buf *s = get_scratch();
    if (!o || !s)
        return 0;
    struct rec_file_delete *r = (void *)s->data;
    void *task = (void *)bpf_get_current_task();
    fill_header(r, KIND_FILE_DELETE, tid >> 32, (__u32)tid);
    r->uid = current_uid(o, task);
    r->dirfd = (int)v.b;
    r->ino = seen.ino;
    r->ctime = seen.ctime;
    r->dev = seen.dev;
    r->mode = seen.mode;
    if (name_and_base(o, task, s->data + sizeof(*r), v.a, (int)v.b, &r->name_len, &r->base_len, &r->flags))
        return 0;
    __u32 size = named_size(sizeof(*r), r->name_len, r->base_len);
    r->size = size;
    submit(r, size, KIND_FILE_DELETE);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat) { return on_unlink_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_unlink) { return on_unlink_exit(args->ret); }

/* FileCreateTime (2): a file's modification time set to a given value (not "now").
 * The time it had before is read from the inode inside the syscall: on multigrain filesystems
 * (ext4, xfs, btrfs, tmpfs) setattr stamps ctime through inode_set_ctime_current() before it
 * writes the new mtime, and its tracepoints (timestamp:ctime_ns_xchg, ctime_xchg_skip) hand over
 * the inode. Elsewhere only the new time is known (have_prev = 0). */
#define UTIME_NOW ((1L << 30) - 1L)
#define UTIME_OMIT ((1L << 30) - 2L)

struct time_stash {
    __u64 name;
    __s64 dfd;
    __s64 sec;
    __s64 nsec;
    __u64 inode;
    __s64 prev_sec;
    __u32 prev_nsec;
    __u32 have_prev;
};
BPF_HASH(time_stash, __u64, struct time_stash, 4096);

static __always_inline int stash_time(const char *name, long dfd, __s64 sec, __s64 nsec)
{
    if (!kind_enabled(KIND_FILE_TIME) || nsec == UTIME_NOW || nsec == UTIME_OMIT)
        return 0;
    __u64 tid = bpf_get_current_pid_tgid();
    struct time_stash v = {};
    v.name = (__u64)name;
    v.dfd = dfd;
    v.sec = sec;
    v.nsec = nsec;
    __u32 kind = KIND_FILE_TIME;
    if (time_stash.update(&tid, &v))
        count(drops.lookup(&kind));
    return 0;
}

/* times[1] is the modification time; NULL times mean "now" for both (no event) */
static __always_inline int stash_timespec(const char *name, long dfd, const void *times)
{
    __s64 ts[4] = {};
    if (!times || bpf_probe_read_user(ts, sizeof(ts), times))
        return 0;
    return stash_time(name, dfd, ts[2], ts[3]);
}

static __always_inline int stash_timeval(const char *name, long dfd, const void *times)
{
    __s64 tv[4] = {};
    if (!times || bpf_probe_read_user(tv, sizeof(tv), times))
        return 0;
    if (tv[3] < 0 || tv[3] >= 1000000)
        return 0; /* EINVAL */
    return stash_time(name, dfd, tv[2], tv[3] * 1000);
}

/* format: int dfd; const char *filename; struct __kernel_timespec *utimes; int flags; */
TRACEPOINT_PROBE(syscalls, sys_enter_utimensat)
{
    return stash_timespec(args->filename, args->dfd, (void *)args->utimes);
}
/* format: int dfd; const char *filename; struct __kernel_old_timeval *utimes; */
TRACEPOINT_PROBE(syscalls, sys_enter_futimesat)
{
    return stash_timeval(args->filename, args->dfd, (void *)args->utimes);
}
/* format: char *filename; struct __kernel_old_timeval *utimes; */
TRACEPOINT_PROBE(syscalls, sys_enter_utimes)
{
    return stash_timeval(args->filename, AT_FDCWD, (void *)args->utimes);
}
/* format: char *filename; struct utimbuf *times; (actime, modtime: longs) */
TRACEPOINT_PROBE(syscalls, sys_enter_utime)
{
    __s64 tb[2] = {};
    if (!args->times || bpf_probe_read_user(tb, sizeof(tb), (void *)args->times))
        return 0;
    return stash_time(args->filename, AT_FDCWD, tb[1], 0);
}

/* In a utime call the first ctime update is the target's setattr. An unlink updates the
 * directory's and the victim's (in either order): the last non-directory is the victim. */
static __always_inline int on_ctime_update(void *inode, int before_mtime, const void *new_ctime)
{
    __u64 tid = bpf_get_current_pid_tgid();
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    struct victim *victim = unlink_victim.lookup(&tid);
    if (victim) {
        __u16 mode = read_u16(inode, o->inode_mode);
        if ((mode & S_IFMT) != S_IFDIR) {
            victim->ino = read_u64(inode, o->inode_ino);
            victim->dev = read_u32(read_ptr(inode, o->inode_sb), o->sb_dev, 0);
            victim->mode = mode;
            __s64 sec = 0; /* the ctime being set, as fstat will show it after the call */
            if (new_ctime)
                bpf_probe_read_kernel(&sec, sizeof(sec), new_ctime);
            victim->ctime = new_ctime ? sec : read_u64(inode, o->inode_ctime_sec);
        }
        return 0;
    }
    struct time_stash *v = time_stash.lookup(&tid);
    if (!v || v->inode)
        return 0;
    v->inode = (__u64)inode;
    if (before_mtime && o->inode_mtime_sec != OFFSET_MISSING && o->inode_mtime_nsec != OFFSET_MISSING) {
        v->prev_sec = read_u64(inode, o->inode_mtime_sec);
        v->prev_nsec = read_u32(inode, o->inode_mtime_nsec, 0);
        v->have_prev = 1;
    }
    return 0;
}

/* TP_PROTO(struct inode *inode, u32 old, u32 new, u32 cur): i_ctime_sec is already the new one */
RAW_TRACEPOINT_PROBE(ctime_ns_xchg) { return on_ctime_update((void *)ctx->args[0], 1, 0); }
/* TP_PROTO(struct inode *inode, struct timespec64 *ctime): tv_sec first */
RAW_TRACEPOINT_PROBE(ctime_xchg_skip) { return on_ctime_update((void *)ctx->args[0], 1, (void *)ctx->args[1]); }
/* other filesystems: called after the mtime was written, so only the inode is worth keeping */
RAW_TRACEPOINT_PROBE(inode_set_ctime_to_ts)
{
    return on_ctime_update((void *)ctx->args[0], 0, (void *)ctx->args[1]);
}

static __always_inline int on_time_exit(long ret)
{
    __u64 tid = bpf_get_current_pid_tgid();
    struct time_stash *p = time_stash.lookup(&tid);
    if (!p)
        return 0;
    struct time_stash v = *p;
    time_stash.delete(&tid);
    if (ret != 0)
        return 0;
    struct sysmon_offsets *o = get_offsets();
    struct scratch_buf *s = get_scratch();
    if (!o || !s)
        return 0;
    struct rec_file_time *r = (void *)s->data;
    void *task = (void *)bpf_get_current_task();
    fill_header(r, KIND_FILE_TIME, tid >> 32, (__u32)tid);
    r->uid = current_uid(o, task);
    r->dirfd = (int)v.dfd;
    r->mtime_sec = v.sec;
    r->mtime_nsec = (__u32)v.nsec;
    if (v.inode && o->inode_mtime_sec != OFFSET_MISSING && o->inode_mtime_nsec != OFFSET_MISSING) {
        /* what the filesystem kept (truncated to its granularity), not what was asked */
        r->mtime_sec = read_u64((void *)v.inode, o->inode_mtime_sec);
        r->mtime_nsec = read_u32((void *)v.inode, o->inode_mtime_nsec, 0);
    }
    r->prev_mtime_sec = v.prev_sec;
    r->prev_mtime_nsec = v.prev_nsec;
    r->have_prev = v.have_prev;
    if (name_and_base(o, task, s->data + sizeof(*r), v.name, (int)v.dfd, &r->name_len, &r->base_len, &r->flags))
        return 0;
    __u32 size = named_size(sizeof(*r), r->name_len, r->base_len);
    r->size = size;
    submit(r, size, KIND_FILE_TIME);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_utimensat) { return on_time_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_futimesat) { return on_time_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_utimes) { return on_time_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_utime) { return on_time_exit(args->ret); }
