"""Kernel struct fields the BPF programs read, resolved from BTF at collector start.

Why: this machine has no headers for its running kernel, and struct layouts change between
builds, so the programs never compile field offsets in; they read this table from a map.
The C struct `sysmon_offsets` (bpf/include/records.h) is generated from OFFSETS in this order.
A field that does not exist on the running kernel gets OFFSET_MISSING and the program falls back.
"""

from __future__ import annotations

OFFSET_MISSING = 0xFFFFFFFF

# (name in the C struct, BTF struct, member; "a|b" tries a then b, for kernel renames)
OFFSETS: tuple[tuple[str, str, str], ...] = (
    ("task_pid", "task_struct", "pid"),
    ("task_tgid", "task_struct", "tgid"),
    ("task_real_parent", "task_struct", "real_parent"),
    ("task_group_leader", "task_struct", "group_leader"),
    ("task_start_boottime", "task_struct", "start_boottime"),
    ("task_cred", "task_struct", "cred"),
    ("task_mm", "task_struct", "mm"),
    ("task_fs", "task_struct", "fs"),
    ("task_signal", "task_struct", "signal"),
    ("task_loginuid", "task_struct", "loginuid"),
    ("task_sessionid", "task_struct", "sessionid"),
    ("task_exit_code", "task_struct", "exit_code"),
    ("cred_uid", "cred", "uid"),
    ("cred_gid", "cred", "gid"),
    ("mm_arg_start", "mm_struct", "arg_start"),
    ("mm_arg_end", "mm_struct", "arg_end"),
    ("mm_end_code", "mm_struct", "end_code"),
    ("mm_exe_file", "mm_struct", "exe_file"),
    ("file_f_path", "file", "f_path"),
    ("fs_pwd", "fs_struct", "pwd"),
    ("signal_tty", "signal_struct", "tty"),
    ("tty_index", "tty_struct", "index"),
    ("file_f_inode", "file", "f_inode"),
    ("inode_ino", "inode", "i_ino"),
    ("inode_sb", "inode", "i_sb"),
    ("inode_ctime_sec", "inode", "i_ctime_sec|__i_ctime|i_ctime"),  # 6.11 | 6.6 | older: tv_sec first
    ("inode_mtime_sec", "inode", "i_mtime_sec"),  # 6.11+; older kernels: no previous time in event 2
    ("inode_mtime_nsec", "inode", "i_mtime_nsec"),
    ("sb_dev", "super_block", "s_dev"),
    ("task_files", "task_struct", "files"),
    ("task_ptraced", "task_struct", "ptraced"),
    ("task_ptrace_entry", "task_struct", "ptrace_entry"),
    ("files_fdt", "files_struct", "fdt"),
    ("fdt_fd", "fdtable", "fd"),
    ("fdt_max_fds", "fdtable", "max_fds"),
    ("file_f_mode", "file", "f_mode"),
    ("file_private_data", "file", "private_data"),
    ("inode_mode", "inode", "i_mode"),
    ("socket_sk", "socket", "sk"),
    ("sk_family", "sock_common", "skc_family"),
    ("sk_daddr", "sock_common", "skc_daddr"),
    ("sk_rcv_saddr", "sock_common", "skc_rcv_saddr"),
    ("sk_dport", "sock_common", "skc_dport"),
    ("sk_num", "sock_common", "skc_num"),
    ("sk_v6_daddr", "sock_common", "skc_v6_daddr"),
    ("sk_v6_rcv_saddr", "sock_common", "skc_v6_rcv_saddr"),
    ("sk_protocol", "sock", "sk_protocol"),
    ("skb_head", "sk_buff", "head"),
    ("skb_sk", "sk_buff", "sk"),
    ("skb_network_header", "sk_buff", "network_header"),
    ("skb_transport_header", "sk_buff", "transport_header"),
    ("prog_type", "bpf_prog", "type"),
    ("prog_aux", "bpf_prog", "aux"),
    ("prog_aux_id", "bpf_prog_aux", "id"),
    ("prog_aux_name", "bpf_prog_aux", "name"),
    ("path_mnt", "path", "mnt"),
    ("path_dentry", "path", "dentry"),
    ("dentry_parent", "dentry", "d_parent"),
    ("dentry_name", "dentry", "d_name"),
    ("qstr_len", "qstr", "len"),
    ("qstr_name", "qstr", "name"),
    ("mount_mnt", "mount", "mnt"),
    ("mount_parent", "mount", "mnt_parent"),
    ("mount_mountpoint", "mount", "mnt_mountpoint"),
    ("vfsmount_root", "vfsmount", "mnt_root"),
)

# Fields the programs cannot work without (the rest degrade to "unknown" values).
OPTIONAL = frozenset(
    {"task_loginuid", "task_sessionid", "task_exit_code", "inode_mtime_sec", "inode_mtime_nsec"}
)
REQUIRED: frozenset[str] = frozenset(n for n, _, _ in OFFSETS if n not in OPTIONAL)
