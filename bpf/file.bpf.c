/* Files: FileCreate (Sysmon 11), RawAccessRead (9), FileDelete (23).
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

static __always_inline int stash_unlink(const char *pathname, long dfd)
{
    if (!kind_enabled(KIND_FILE_DELETE))
        return 0;
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v = {(__u64)pathname, (__u64)dfd, 0, 0};
    stash.update(&tid, &v);
    return 0;
}

/* format: int dfd; const char *pathname; int flag; */
TRACEPOINT_PROBE(syscalls, sys_enter_unlinkat) { return stash_unlink(args->pathname, args->dfd); }
/* format: const char *pathname; */
TRACEPOINT_PROBE(syscalls, sys_enter_unlink) { return stash_unlink(args->pathname, AT_FDCWD); }

static __always_inline int on_unlink_exit(long ret)
{
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v;
    if (!stash_take(tid, &v))
        return 0;
    __u64 uname = v.a;
    int dfd = (int)v.b;
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
    r->dirfd = dfd;
    __u8 *tail = s->data + sizeof(*r);
    long n = bpf_probe_read_user_str(tail, PATH_MAX_BYTES, (void *)uname);
    if (n <= 0)
        return 0;
    __u32 name_len = n - 1; /* without the NUL */
    if (name_len > PATH_MAX_BYTES)
        name_len = PATH_MAX_BYTES;
    r->name_len = name_len;
    r->base_len = 0;
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
            walk_path(o, path, tail + name_len, &r->base_len, &r->flags, REC_F_PATH_TRUNC);
    }
    __u32 base_len = r->base_len;
    if (base_len > PATH_MAX_BYTES)
        base_len = PATH_MAX_BYTES;
    __u32 size = sizeof(*r) + name_len + base_len;
    if (size > SCRATCH_SIZE)
        size = SCRATCH_SIZE;
    r->size = size;
    submit(r, size, KIND_FILE_DELETE);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat) { return on_unlink_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_unlink) { return on_unlink_exit(args->ret); }
