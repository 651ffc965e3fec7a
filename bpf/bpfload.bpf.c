/* eBPFEvent (Sysmon 100): BPF_PROG_LOAD (returns a program fd) and BPF_PROG_ATTACH (returns 0).
 *
 * The program's type, id and name come from the kernel's struct bpf_prog behind the returned
 * fd, not from the attributes the loader passed in user memory.
 */
#include "common.h"

#define BPF_PROG_LOAD 5
#define BPF_PROG_ATTACH 8

/* format: int cmd; union bpf_attr *uattr; unsigned int size; */
TRACEPOINT_PROBE(syscalls, sys_enter_bpf)
{
    if ((args->cmd != BPF_PROG_LOAD && args->cmd != BPF_PROG_ATTACH) || !kind_enabled(KIND_BPF_PROGRAM))
        return 0;
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v = {args->cmd, 0, 0, 0};
    stash.update(&tid, &v);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_bpf)
{
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v;
    if (!stash_take(tid, &v))
        return 0;
    __u32 cmd = v.a;
    long ret = args->ret;
    if ((cmd == BPF_PROG_LOAD && ret < 0) || (cmd == BPF_PROG_ATTACH && ret != 0))
        return 0;
    struct sysmon_offsets *o = get_offsets();
    struct scratch_buf *s = get_scratch();
    if (!o || !s)
        return 0;
    void *task = (void *)bpf_get_current_task();
    struct rec_bpf_program *r = (void *)s->data;
    fill_header(r, KIND_BPF_PROGRAM, tid >> 32, (__u32)tid);
    r->uid = current_uid(o, task);
    r->command = cmd;
    r->fd = ret;
    r->_reserved = 0;
    r->prog_type = 0;
    r->prog_id = 0;
    r->name_len = 0;
    __u8 *name = s->data + sizeof(*r);
    if (cmd == BPF_PROG_LOAD) {
        void *prog = read_ptr(fd_file(o, task, ret), o->file_private_data);
        void *aux = read_ptr(prog, o->prog_aux);
        r->prog_type = read_u32(prog, o->prog_type, 0);
        r->prog_id = read_u32(aux, o->prog_aux_id, 0);
        if (aux && bpf_probe_read_kernel(name, 16, (char *)aux + o->prog_aux_name) == 0)
            r->name_len = 16;
    }
    r->size = sizeof(*r) + r->name_len;
    submit(r, sizeof(*r) + (r->name_len & 31), KIND_BPF_PROGRAM);
    return 0;
}
