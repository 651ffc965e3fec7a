/* Maps and helpers shared by every program: ring buffer, per-kind enable switches and drop
 * counters, the BTF offsets table, a per-CPU scratch record, and the reads that use offsets.
 *
 * Why offsets from a map: no header for the running kernel exists on our machines; reading a
 * struct through a compiled header layout would silently read the wrong bytes. Every kernel
 * field is read as *(base + offs->field), the offset resolved from BTF by collector/btf.py.
 *
 * Every bpf/<area>.bpf.c includes this file. collector/loader.py also puts it first in the one module
 * it compiles (bcc rewrites map calls only in its main file, not in included headers), so the
 * include guard makes those #includes no-ops there; they keep each file readable on its own.
 */
#ifndef SYSMON_COMMON_H
#define SYSMON_COMMON_H

#include "records.h"

#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 2048
#endif

/* Record buffer: big enough for a PROCESS_EXEC with full exe, cwd and argv. */
#define SCRATCH_SIZE (sizeof(struct rec_process_exec) + 2 * (PATH_MAX_BYTES + NAME_MAX_BYTES) + ARGS_MAX_BYTES)

struct scratch_buf {
    __u8 data[SCRATCH_SIZE];
};

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_ARRAY(offsets_map, struct sysmon_offsets, 1);
BPF_ARRAY(enabled, __u32, MAX_BPF_KIND);          /* 1 = some filterd wants this kind */
BPF_PERCPU_ARRAY(drops, __u64, MAX_BPF_KIND);     /* ring buffer full, per kind */
BPF_PERCPU_ARRAY(emitted, __u64, MAX_BPF_KIND);   /* records submitted, per kind */
BPF_PERCPU_ARRAY(scratch, struct scratch_buf, 1);
/* tgids of the monitor's own processes (collector, its supervisor, connected filterds): their
 * events are dropped here, as upstream drops its own. Filled by the collector only. */
BPF_HASH(quiet, __u32, __u32, 64);
/* Collector state that must outlive a collector process (collector/pins.py names the slots);
 * no program touches it. */
BPF_ARRAY(stream, __u64, 8);

static __always_inline int kind_enabled(__u32 kind)
{
    __u32 *on = enabled.lookup(&kind);
    return on && *on;
}

static __always_inline void count(void *map_lookup_result)
{
    __u64 *c = map_lookup_result;
    if (c)
        __sync_fetch_and_add(c, 1);
}

/* A reservation can fail with the ring nearly empty: on 6.18, when both CPUs write, it now and
 * then fails at once, not after a wait (measured here: ~5 per million records from two
 * writers, more from four, with 22 KiB of 4 MiB in use). Retrying at once succeeds:
 * the slowest seen took 64 more tries (1.2 us; a failing try is 20-30 ns). So a failed record
 * is tried OUTPUT_RETRIES more times; only a ring still refusing then (full: the reader is
 * behind) counts a drop, at a bounded cost (~5-8 us) to the thread that made the event. A
 * count, not a time limit: with a clock check in the loop the verifier refused the larger
 * programs. The verifier walks every try, so a submit inside a bounded loop of its own (the
 * mmsg paths in net.bpf.c) gets fewer (OUTPUT_RETRIES_IN_LOOP). */
#define OUTPUT_RETRIES 256
#define OUTPUT_RETRIES_IN_LOOP 16

static __always_inline void output(void *rec, __u32 size, __u32 kind, int retries)
{
#pragma clang loop unroll(disable)
    for (int i = 0; i <= retries; i++) {
        if (events.ringbuf_output(rec, size, BPF_RB_NO_WAKEUP) == 0) {
            count(emitted.lookup(&kind));
            return;
        }
    }
    count(drops.lookup(&kind));
}

/* Forks are announced lazily: most children exec at once, and their PROCESS_EXEC carries all
 * filterd needs, so a PROCESS_FORK waits here and is sent only if the child does something
 * else first (another event, a fork of its own, or its exit). */
BPF_TABLE("lru_hash", __u32, struct rec_process_fork, forked, 65536);

static __always_inline void announce_fork(__u32 tgid, int retries)
{
    struct rec_process_fork *f = forked.lookup(&tgid);
    if (!f)
        return;
    struct rec_process_fork r = *f;
    forked.delete(&tgid);
    output(&r, sizeof(r), KIND_PROCESS_FORK, retries);
}

/* Submit `size` bytes of `rec` (after its process's pending fork, if any); counts drops when
 * the ring is full. The reader drains on its own timer (collector/ringbuf.py), so no wakeup is
 * sent: that saves an IPI per record. */
static __always_inline void submit_tries(void *rec, __u32 size, __u32 kind, int retries)
{
    __u32 actor = ((struct rec_header *)rec)->pid;
    if (quiet.lookup(&actor))
        return;
    if (kind != KIND_PROCESS_EXEC)
        announce_fork(actor, retries);
    output(rec, size, kind, retries);
}

static __always_inline void submit(void *rec, __u32 size, __u32 kind)
{
    submit_tries(rec, size, kind, OUTPUT_RETRIES);
}

static __always_inline struct sysmon_offsets *get_offsets(void)
{
    int zero = 0;
    return offsets_map.lookup(&zero);
}

static __always_inline struct scratch_buf *get_scratch(void)
{
    int zero = 0;
    return scratch.lookup(&zero);
}

static __always_inline void *read_ptr(const void *base, __u32 off)
{
    void *v = 0;
    if (!base || off == OFFSET_MISSING)
        return 0;
    bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

/* The thread group leader of `task` (task itself when it is the leader or unreadable). */
static __always_inline void *leader_of(struct sysmon_offsets *o, void *task)
{
    void *leader = read_ptr(task, o->task_group_leader);
    return leader ? leader : task;
}

static __always_inline __u64 read_u64(const void *base, __u32 off)
{
    __u64 v = 0;
    if (base && off != OFFSET_MISSING)
        bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

static __always_inline __u32 read_u32(const void *base, __u32 off, __u32 fallback)
{
    __u32 v = fallback;
    if (base && off != OFFSET_MISSING)
        bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

static __always_inline __u16 read_u16(const void *base, __u32 off)
{
    __u16 v = 0;
    if (base && off != OFFSET_MISSING)
        bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

/* struct file * of descriptor `fd` of `task`, or 0 (current->files->fdt->fd[fd]). */
static __always_inline void *fd_file(struct sysmon_offsets *o, void *task, long fd)
{
    void *fdt = read_ptr(read_ptr(task, o->task_files), o->files_fdt);
    if (fd < 0 || fd >= read_u32(fdt, o->fdt_max_fds, 0))
        return 0;
    return read_ptr(read_ptr(fdt, o->fdt_fd), (__u32)fd * 8);
}

static __always_inline __u32 current_uid(struct sysmon_offsets *o, void *task)
{
    return read_u32(read_ptr(task, o->task_cred), o->cred_uid, 0xffffffff);
}

/* Syscall arguments kept from sys_enter to sys_exit, per thread. */
struct stash_val {
    __u64 a;
    __u64 b;
    __u64 c;
    __u64 d;
};
BPF_HASH(stash, __u64, struct stash_val, 16384);

/* Take (copy out and delete) what this thread's sys_enter kept; 0 if nothing. */
static __always_inline int stash_take(__u64 tid, struct stash_val *out)
{
    struct stash_val *v = stash.lookup(&tid);
    if (!v)
        return 0;
    *out = *v;
    stash.delete(&tid);
    return 1;
}

static __always_inline void fill_header(void *rec, __u16 kind, __u32 pid, __u32 tid)
{
    struct rec_header *h = rec;
    h->kind = kind;
    h->flags = 0;
    h->time_ns = bpf_ktime_get_boot_ns();
    h->pid = pid;
    h->tid = tid;
}

/* Pointer read without branches: a NULL base just reads nothing (the helper zeroes dst). Used in
 * the path walk, where every branch would multiply the states the verifier has to explore. */
static __always_inline void *peek_ptr(const void *addr)
{
    void *v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), addr);
    return v;
}

/* a == b without the verifier linking a and b: linked registers make otherwise equal states
 * differ, which stops state pruning in the path walk and blows the 1M-instruction budget. */
static __always_inline int same_ptr(void *a, void *b)
{
    __u64 d = (__u64)a ^ (__u64)b;
    asm volatile("" : "+r"(d));
    return d == 0;
}

/* Walk a `struct path` from leaf to root into buf[0..], each component NUL-terminated; the
 * length goes to *len and trunc_bit to *flags when the walk stopped early. Mount points are
 * crossed through struct mount (the vfsmount is embedded in it at offs->mount_mnt).
 * `buf` needs PATH_MAX_BYTES + NAME_MAX_BYTES bytes of room.
 * Verifier note: *len and *flags live in the map value (the record being built), not on the
 * stack. Values re-read from map memory are unknown to the verifier, so every iteration starts
 * from the same state and is pruned; stack copies would differ per path and explode. */
static __always_inline void walk_path(struct sysmon_offsets *o, const void *path, __u8 *buf,
                                      __u16 *len, __u16 *flags, __u16 trunc_bit)
{
    void *dentry = peek_ptr((const char *)path + o->path_dentry);
    void *vfsmnt = peek_ptr((const char *)path + o->path_mnt);
    void *mnt = (char *)vfsmnt - o->mount_mnt;
    *len = 0;
    *flags |= trunc_bit;
    for (int i = 0; i < PATH_MAX_DEPTH; i++) {
        __u32 off = *len;
        if (off > PATH_MAX_BYTES - NAME_MAX_BYTES)
            return;
        void *mnt_root = peek_ptr((char *)vfsmnt + o->vfsmount_root);
        void *parent = peek_ptr((char *)dentry + o->dentry_parent);
        if (same_ptr(dentry, mnt_root)) {
            void *mnt_parent = peek_ptr((char *)mnt + o->mount_parent);
            if (same_ptr(mnt_parent, mnt)) {
                *flags &= ~trunc_bit; /* global root */
                return;
            }
            dentry = peek_ptr((char *)mnt + o->mount_mountpoint);
            mnt = mnt_parent;
            vfsmnt = (char *)mnt + o->mount_mnt;
            continue;
        }
        if (same_ptr(parent, dentry)) {
            *flags &= ~trunc_bit; /* root of a filesystem not mounted in our namespace */
            return;
        }
        const char *name = peek_ptr((char *)dentry + o->dentry_name + o->qstr_name);
        int n = bpf_probe_read_kernel_str(buf + off, NAME_MAX_BYTES, name);
        if (n <= 0)
            return;
        *len = off + n;
        dentry = parent;
    }
}

#endif
