/* Process life cycle: exec (Sysmon 1), exit (Sysmon 5) and fork (process cache only).
 *
 * Some facts about these hooks:
 *  - sched_process_exec runs in the new image, after the point of no return: the mm, argv and
 *    exe_file are the new ones, and a failed execve never gets here. Reading argv here, in the
 *    kernel, gives the full command line even when the process exits a microsecond later.
 *  - sched_process_exit fires once per thread; `group_dead` is true only for the last one, so
 *    one PROCESS_EXIT per process. The exiting thread may not be the group leader, so the start
 *    time is read from task->group_leader.
 *  - sched_process_fork fires for threads too; only new thread groups (child pid == tgid) matter.
 *    Its record is held back (see `forked` in common.h) until the child does anything but exec.
 */
#include "common.h"

/* TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
 * format: __data_loc char[] filename; pid_t pid; pid_t old_pid; */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    __u32 kind = KIND_PROCESS_EXEC;
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    forked.delete(&tgid); /* this exec says all a fork record would have */
    if (!kind_enabled(kind))
        return 0;
    struct sysmon_offsets *o = get_offsets();
    struct scratch_buf *s = get_scratch();
    if (!o || !s)
        return 0;
    struct rec_process_exec *r = (void *)s->data;
    void *task = (void *)bpf_get_current_task();
    __u64 id = bpf_get_current_pid_tgid();
    fill_header(r, kind, id >> 32, (__u32)id);

    void *cred = read_ptr(task, o->task_cred);
    r->uid = read_u32(cred, o->cred_uid, 0xffffffff);
    r->gid = read_u32(cred, o->cred_gid, 0xffffffff);
    r->auid = read_u32(task, o->task_loginuid, 0xffffffff);
    r->sessionid = read_u32(task, o->task_sessionid, 0xffffffff);
    r->start_ns = read_u64(leader_of(o, task), o->task_start_boottime);
    void *parent = leader_of(o, read_ptr(task, o->task_real_parent));
    r->ppid = read_u32(parent, o->task_tgid, 0);
    r->parent_start_ns = read_u64(parent, o->task_start_boottime);

    void *signal = read_ptr(task, o->task_signal);
    void *tty = read_ptr(signal, o->signal_tty);
    r->tty = tty ? read_u32(tty, o->tty_index, 0) : 0;
    if (!tty)
        r->flags |= REC_F_NO_TTY;

    void *mm = read_ptr(task, o->task_mm);
    r->end_code = read_u64(mm, o->mm_end_code);

    /* Image: mm->exe_file->f_path. Lengths are re-read from the record (map memory) and
     * clamped, so the verifier sees one range whatever path the walk took. */
    __u8 *tail = s->data + sizeof(*r);
    r->exe_len = 0;
    void *exe_file = read_ptr(mm, o->mm_exe_file);
    void *inode = read_ptr(exe_file, o->file_f_inode);
    r->exe_ino = read_u64(inode, o->inode_ino);
    r->exe_ctime = read_u64(inode, o->inode_ctime_sec);
    r->exe_dev = read_u32(read_ptr(inode, o->inode_sb), o->sb_dev, 0);
    r->_reserved = 0;
    if (exe_file)
        walk_path(o, (char *)exe_file + o->file_f_path, tail, &r->exe_len, &r->flags, REC_F_EXE_TRUNC);
    __u32 exe_len = r->exe_len;
    if (exe_len > PATH_MAX_BYTES)
        exe_len = PATH_MAX_BYTES;

    /* CurrentDirectory: fs->pwd */
    r->cwd_len = 0;
    void *fs = read_ptr(task, o->task_fs);
    if (fs)
        walk_path(o, (char *)fs + o->fs_pwd, tail + exe_len, &r->cwd_len, &r->flags, REC_F_CWD_TRUNC);
    __u32 cwd_len = r->cwd_len;
    if (cwd_len > PATH_MAX_BYTES)
        cwd_len = PATH_MAX_BYTES;

    /* CommandLine: argv as the process has it, NUL-separated */
    __u64 arg_start = read_u64(mm, o->mm_arg_start);
    __u64 arg_end = read_u64(mm, o->mm_arg_end);
    __u32 args_len = 0;
    if (arg_end > arg_start) {
        __u64 want = arg_end - arg_start;
        if (want > ARGS_MAX_BYTES - 1) {
            want = ARGS_MAX_BYTES - 1;
            r->flags |= REC_F_ARGS_TRUNC;
        }
        __u32 off = exe_len + cwd_len;
        if (off > 2 * PATH_MAX_BYTES)
            off = 2 * PATH_MAX_BYTES;
        if (bpf_probe_read_user(tail + off, want & (ARGS_MAX_BYTES - 1), (void *)arg_start) == 0)
            args_len = want & (ARGS_MAX_BYTES - 1);
        else
            r->flags |= REC_F_ARGS_TRUNC;
    }
    r->args_len = args_len;

    __u32 size = sizeof(*r) + exe_len + cwd_len + args_len;
    if (size > SCRATCH_SIZE)
        size = SCRATCH_SIZE;
    r->size = size;
    submit(r, size, kind);
    return 0;
}

/* TP_PROTO(struct task_struct *p, bool group_dead)
 * format: char comm[16]; pid_t pid; int prio; bool group_dead; */
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    __u32 kind = KIND_PROCESS_EXIT;
    if (!args->group_dead || !kind_enabled(kind))
        return 0;
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    struct rec_process_exit r = {};
    void *task = (void *)bpf_get_current_task();
    __u64 id = bpf_get_current_pid_tgid();
    fill_header(&r, kind, id >> 32, (__u32)id);
    r.size = sizeof(r);
    void *cred = read_ptr(task, o->task_cred);
    r.uid = read_u32(cred, o->cred_uid, 0xffffffff);
    r.exit_code = read_u32(task, o->task_exit_code, 0);
    r.start_ns = read_u64(leader_of(o, task), o->task_start_boottime);
    r.end_code = read_u64(read_ptr(task, o->task_mm), o->mm_end_code);
    submit(&r, sizeof(r), kind);
    return 0;
}

/* TP_PROTO(struct task_struct *parent, struct task_struct *child) */
RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    __u32 kind = KIND_PROCESS_FORK;
    if (!kind_enabled(kind))
        return 0;
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    void *parent = (void *)ctx->args[0];
    void *child = (void *)ctx->args[1];
    __u32 child_pid = read_u32(child, o->task_pid, 0);
    __u32 child_tgid = read_u32(child, o->task_tgid, 0);
    if (child_pid != child_tgid)
        return 0; /* a thread */
    struct rec_process_fork r = {};
    __u64 id = bpf_get_current_pid_tgid();
    announce_fork(id >> 32, OUTPUT_RETRIES); /* a pending parent must be known before its child */
    fill_header(&r, kind, id >> 32, (__u32)id);
    r.size = sizeof(r);
    r.child_pid = child_pid;
    void *cred = read_ptr(parent, o->task_cred);
    r.uid = read_u32(cred, o->cred_uid, 0xffffffff);
    r.child_start_ns = read_u64(child, o->task_start_boottime);
    r.parent_start_ns = read_u64(leader_of(o, parent), o->task_start_boottime);
    forked.update(&child_pid, &r);
    return 0;
}
