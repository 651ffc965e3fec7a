/* ProcessAccess (Sysmon 10): a successful PTRACE_ATTACH or PTRACE_SEIZE.
 *
 * Some facts about this hook: after a successful attach the tracee sits at the head of the
 * tracer's `ptraced` list (ptrace_link() does list_add), so the target is read from there:
 * kernel data, not the pid argument and not /proc, which a racing process could swap.
 */
#include "common.h"

#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206

/* format: long request; long pid; unsigned long addr; unsigned long data; */
TRACEPOINT_PROBE(syscalls, sys_enter_ptrace)
{
    if ((args->request != PTRACE_ATTACH && args->request != PTRACE_SEIZE) ||
        !kind_enabled(KIND_PROCESS_ACCESS))
        return 0;
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v = {args->request, args->pid, 0, 0};
    stash.update(&tid, &v);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_ptrace)
{
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v;
    if (!stash_take(tid, &v))
        return 0;
    __u32 request = v.a;
    if (args->ret != 0)
        return 0;
    struct sysmon_offsets *o = get_offsets();
    struct scratch_buf *s = get_scratch();
    if (!o || !s)
        return 0;
    void *task = (void *)bpf_get_current_task();
    void *head = (char *)task + o->task_ptraced;
    void *first = read_ptr(head, 0);
    if (!first || first == head)
        return 0;
    void *target = (char *)first - o->task_ptrace_entry;
    struct rec_process_access *r = (void *)s->data;
    fill_header(r, KIND_PROCESS_ACCESS, tid >> 32, (__u32)tid);
    r->uid = current_uid(o, task);
    r->request = request;
    r->_reserved = 0;
    r->target_pid = read_u32(target, o->task_tgid, 0);
    r->target_tid = read_u32(target, o->task_pid, 0);
    r->target_uid = current_uid(o, target);
    r->target_start_ns = read_u64(leader_of(o, target), o->task_start_boottime);
    void *mm = read_ptr(target, o->task_mm);
    r->target_end_code = read_u64(mm, o->mm_end_code);
    r->target_exe_len = 0;
    void *exe_file = read_ptr(mm, o->mm_exe_file);
    if (exe_file)
        walk_path(o, (char *)exe_file + o->file_f_path, s->data + sizeof(*r), &r->target_exe_len,
                  &r->flags, REC_F_PATH_TRUNC);
    __u32 len = r->target_exe_len;
    if (len > PATH_MAX_BYTES)
        len = PATH_MAX_BYTES;
    r->size = sizeof(*r) + len;
    submit(r, sizeof(*r) + len, KIND_PROCESS_ACCESS);
    return 0;
}
