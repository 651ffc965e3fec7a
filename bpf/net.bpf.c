/* Network: NetworkConnect (Sysmon 3) for TCP and UDP, and DNS answers for DnsQuery (22).
 *
 * Some facts about these hooks:
 *  - inet_sock_set_state runs in the connecting process for ->SYN_SENT, but asynchronously
 *    (softirq, any task) for SYN_SENT->ESTABLISHED; so the owner is remembered per socket at
 *    SYN_SENT and the event is sent when the handshake completes. ->CLOSE forgets it: a failed
 *    connect is never reported.
 *  - accept()/accept4() returns in the accepting process: the new socket's addresses are read
 *    from its struct sock (kernel data), not from the sockaddr the process passed.
 *  - UDP sends are seen at net_dev_queue with the packet's own headers; the owner is the process
 *    that last entered a send syscall on that socket (recorded per struct sock), so a packet
 *    queued later from softirq is still attributed right.
 *  - UDP receives and DNS answers are seen at the exit of recvfrom()/recvmsg() in the reading
 *    process (skb_copy_datagram_iovec does not fire for UDP on current kernels, and the
 *    datagram is freed without consume_skb); recvmmsg() likewise, its first MMSG_MAX messages.
 *    DNS answers over TCP are read with read() or recv*() on a socket connected to port 53.
 *  - DNS queries (UDP to port 53) are kept at the entry of sendto/sendmsg/sendmmsg (glibc sends
 *    A and AAAA together with sendmmsg), so filterd can report the ones never answered.
 *  - UDP flows are reported once per (process, direction, 5-tuple) per 30 minutes (upstream's
 *    UDP_REPORT_INTERVAL); that state lives here so repeated datagrams cost no ring space.
 */
#include "common.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define UDP_REPORT_NS (30ULL * 60 * 1000000000ULL)
#define DNS_PORT 53
#define DNS_MAX 512

struct owner {
    __u32 pid;
    __u32 tid;
    __u32 uid;
    __u32 _pad;
};
BPF_TABLE("lru_hash", __u64, struct owner, tcp_connecting, 16384);
BPF_TABLE("lru_hash", __u64, struct owner, udp_owner, 16384);

struct flow_key {
    __u32 pid;
    __u16 sport;
    __u16 dport;
    __u64 saddr_hi, saddr_lo, daddr_hi, daddr_lo;
    __u8 initiated;
    __u8 _pad[7];
};
BPF_TABLE("lru_hash", struct flow_key, __u64, udp_seen, 65536);

static __always_inline __u16 be16(__u16 v) { return (v >> 8) | (v << 8); }

static __always_inline void addr4(__u64 *hi, __u64 *lo, __u32 a)
{
    *hi = 0;
    *lo = a;
}

static __always_inline void emit_conn(struct rec_net_connect *r, __u32 uid)
{
    r->uid = uid;
    r->size = sizeof(*r);
    r->_reserved = 0;
    submit_tries(r, sizeof(*r), KIND_NET_CONNECT, OUTPUT_RETRIES_IN_LOOP);
}

/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != IPPROTO_TCP || !kind_enabled(KIND_NET_CONNECT))
        return 0;
    __u64 sk = (__u64)args->skaddr;
    if (args->newstate == TCP_SYN_SENT) {
        struct sysmon_offsets *o = get_offsets();
        if (!o)
            return 0;
        __u64 id = bpf_get_current_pid_tgid();
        struct owner w = {id >> 32, (__u32)id, current_uid(o, (void *)bpf_get_current_task()), 0};
        tcp_connecting.update(&sk, &w);
        return 0;
    }
    if (args->newstate == TCP_CLOSE) {
        tcp_connecting.delete(&sk);
        return 0;
    }
    if (args->oldstate != TCP_SYN_SENT || args->newstate != TCP_ESTABLISHED)
        return 0;
    struct owner *w = tcp_connecting.lookup(&sk);
    if (!w)
        return 0;
    struct rec_net_connect r = {};
    fill_header(&r, KIND_NET_CONNECT, w->pid, w->tid);
    __u32 uid = w->uid;
    tcp_connecting.delete(&sk);
    r.family = args->family;
    r.protocol = IPPROTO_TCP;
    r.initiated = 1;
    r.sport = args->sport;
    r.dport = args->dport;
    if (args->family == AF_INET6) {
        __builtin_memcpy(&r.saddr_hi, args->saddr_v6, 8);
        __builtin_memcpy(&r.saddr_lo, args->saddr_v6 + 8, 8);
        __builtin_memcpy(&r.daddr_hi, args->daddr_v6, 8);
        __builtin_memcpy(&r.daddr_lo, args->daddr_v6 + 8, 8);
    } else {
        __u32 s4 = 0, d4 = 0;
        __builtin_memcpy(&s4, args->saddr, 4);
        __builtin_memcpy(&d4, args->daddr, 4);
        addr4(&r.saddr_hi, &r.saddr_lo, s4);
        addr4(&r.daddr_hi, &r.daddr_lo, d4);
    }
    emit_conn(&r, uid);
    return 0;
}

static __always_inline int on_accept_exit(long ret)
{
    if (ret < 0 || !kind_enabled(KIND_NET_CONNECT))
        return 0;
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    void *task = (void *)bpf_get_current_task();
    void *sock = read_ptr(read_ptr(fd_file(o, task, ret), o->file_private_data), o->socket_sk);
    if (!sock || read_u16(sock, o->sk_protocol) != IPPROTO_TCP)
        return 0;
    struct rec_net_connect r = {};
    __u64 id = bpf_get_current_pid_tgid();
    fill_header(&r, KIND_NET_CONNECT, id >> 32, (__u32)id);
    r.family = read_u16(sock, o->sk_family);
    r.protocol = IPPROTO_TCP;
    r.initiated = 0;
    /* Source = the remote peer, Destination = this host (upstream's choice for accepts) */
    r.sport = be16(read_u16(sock, o->sk_dport));
    r.dport = read_u16(sock, o->sk_num);
    if (r.family == AF_INET6) {
        r.saddr_hi = read_u64(sock, o->sk_v6_daddr);
        r.saddr_lo = read_u64(sock, o->sk_v6_daddr + 8);
        r.daddr_hi = read_u64(sock, o->sk_v6_rcv_saddr);
        r.daddr_lo = read_u64(sock, o->sk_v6_rcv_saddr + 8);
    } else if (r.family == AF_INET) {
        addr4(&r.saddr_hi, &r.saddr_lo, read_u32(sock, o->sk_daddr, 0));
        addr4(&r.daddr_hi, &r.daddr_lo, read_u32(sock, o->sk_rcv_saddr, 0));
    } else {
        return 0;
    }
    emit_conn(&r, current_uid(o, task));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept) { return on_accept_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_accept4) { return on_accept_exit(args->ret); }

struct user_msghdr_head {
    __u64 msg_name;
    __u32 msg_namelen;
    __u32 _pad;
    __u64 msg_iov;
};
struct iovec_head {
    __u64 base;
    __u64 len;
};
#define MMSGHDR_SIZE 64 /* struct user_msghdr (56) + unsigned int msg_len, padded */
#define MMSG_MAX 4      /* messages of one sendmmsg/recvmmsg looked at */

/* A DNS message the process sent or read, with its first DNS_MAX bytes. */
static __always_inline void emit_dns(__u64 id, __u32 uid, __u16 family, __u8 proto, __u8 outbound, __u16 sport,
                                     __u16 dport, __u64 length, __u64 buf)
{
    if (length < 12)
        return;
    struct scratch_buf *s = get_scratch();
    if (!s)
        return;
    struct rec_dns_packet *r = (void *)s->data;
    fill_header(r, KIND_DNS_PACKET, id >> 32, (__u32)id);
    r->uid = uid;
    r->family = family;
    r->protocol = proto;
    r->outbound = outbound;
    r->sport = sport;
    r->dport = dport;
    r->length = length;
    __u32 len = length > DNS_MAX ? DNS_MAX : length;
    asm volatile("" : "+r"(len)); /* keep the mask below where the verifier can see it */
    len &= DNS_MAX * 2 - 1;
    if (len == 0 || bpf_probe_read_user(s->data + sizeof(*r), len, (void *)buf))
        return;
    r->payload_len = len;
    r->size = sizeof(*r) + len;
    submit_tries(r, sizeof(*r) + len, KIND_DNS_PACKET, OUTPUT_RETRIES_IN_LOOP);
}

/* A query leaving on a UDP socket: kept when its peer (the connected one, or the sockaddr
 * given with this message) is port 53. sockaddr_in and sockaddr_in6 both keep the port at 2. */
static __always_inline void dns_query_out(struct sysmon_offsets *o, void *sock, __u64 id, __u32 uid,
                                          __u16 peer, __u64 buf, __u64 len, __u64 uaddr)
{
    if (!peer && uaddr) {
        __u16 sin[2] = {};
        bpf_probe_read_user(sin, sizeof(sin), (void *)uaddr);
        peer = be16(sin[1]);
    }
    if (peer != DNS_PORT)
        return;
    emit_dns(id, uid, read_u16(sock, o->sk_family), IPPROTO_UDP, 1, read_u16(sock, o->sk_num), peer, len, buf);
}

#define SEND_TO 1
#define SEND_MSG 2
#define SEND_MMSG 3

/* Remember which process is sending on a UDP socket, before its packets are queued; and keep
 * the DNS queries it sends (a query never answered is reported by filterd as a timeout).
 * `p` is the buffer (sendto), the user_msghdr (sendmsg) or the mmsghdr array (sendmmsg). */
static __always_inline int on_send_enter(long fd, __u64 p, __u64 len, __u64 uaddr, __u32 how)
{
    int net = kind_enabled(KIND_NET_CONNECT), dns = kind_enabled(KIND_DNS_PACKET);
    if (!net && !dns)
        return 0;
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    void *task = (void *)bpf_get_current_task();
    void *sock = read_ptr(read_ptr(fd_file(o, task, fd), o->file_private_data), o->socket_sk);
    if (!sock || read_u16(sock, o->sk_protocol) != IPPROTO_UDP)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    __u32 uid = current_uid(o, task);
    if (net) {
        __u64 key = (__u64)sock;
        struct owner w = {id >> 32, (__u32)id, uid, 0};
        udp_owner.update(&key, &w);
    }
    __u16 peer = be16(read_u16(sock, o->sk_dport));
    if (!dns || (peer && peer != DNS_PORT))
        return 0;
    if (how == SEND_TO) {
        dns_query_out(o, sock, id, uid, peer, p, len, uaddr);
        return 0;
    }
    __u32 n = how == SEND_MSG ? 1 : (__u32)len;
    for (__u32 i = 0; i < MMSG_MAX; i++) {
        if (i >= n)
            break;
        struct user_msghdr_head m = {};
        struct iovec_head iov = {};
        if (bpf_probe_read_user(&m, sizeof(m), (void *)(p + i * MMSGHDR_SIZE)) ||
            bpf_probe_read_user(&iov, sizeof(iov), (void *)m.msg_iov))
            break;
        dns_query_out(o, sock, id, uid, peer, iov.base, iov.len, m.msg_name);
    }
    return 0;
}

/* format: int fd; void *buff; size_t len; unsigned int flags; struct sockaddr *addr; int addr_len; */
TRACEPOINT_PROBE(syscalls, sys_enter_sendto)
{
    return on_send_enter(args->fd, (__u64)args->buff, args->len, (__u64)args->addr, SEND_TO);
}
/* format: int fd; struct user_msghdr *msg; unsigned int flags; */
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) { return on_send_enter(args->fd, (__u64)args->msg, 1, 0, SEND_MSG); }
/* format: int fd; struct mmsghdr *mmsg; unsigned int vlen; unsigned int flags; */
TRACEPOINT_PROBE(syscalls, sys_enter_sendmmsg)
{
    return on_send_enter(args->fd, (__u64)args->mmsg, args->vlen, 0, SEND_MMSG);
}

/* Parsed IP + transport header of an skb. */
struct pkt {
    __u16 family;
    __u8 protocol;
    __u8 _pad;
    __u16 sport, dport;
    __u64 saddr_hi, saddr_lo, daddr_hi, daddr_lo;
};

static __always_inline int parse_skb(struct sysmon_offsets *o, void *skb, struct pkt *p)
{
    __u8 *head = read_ptr(skb, o->skb_head);
    __u16 nh = read_u16(skb, o->skb_network_header);
    __u16 th = read_u16(skb, o->skb_transport_header);
    if (!head || nh == 0xffff || th == 0xffff)
        return -1;
    __u8 *ip = head + nh;
    __u8 ver = 0;
    bpf_probe_read_kernel(&ver, 1, ip);
    if ((ver >> 4) == 4) {
        __u8 h[20];
        if (bpf_probe_read_kernel(h, sizeof(h), ip))
            return -1;
        p->family = AF_INET;
        p->protocol = h[9];
        __u32 s4, d4;
        __builtin_memcpy(&s4, h + 12, 4);
        __builtin_memcpy(&d4, h + 16, 4);
        addr4(&p->saddr_hi, &p->saddr_lo, s4);
        addr4(&p->daddr_hi, &p->daddr_lo, d4);
    } else if ((ver >> 4) == 6) {
        __u8 h[40];
        if (bpf_probe_read_kernel(h, sizeof(h), ip))
            return -1;
        p->family = AF_INET6;
        p->protocol = h[6]; /* no extension headers, as upstream */
        __builtin_memcpy(&p->saddr_hi, h + 8, 8);
        __builtin_memcpy(&p->saddr_lo, h + 16, 8);
        __builtin_memcpy(&p->daddr_hi, h + 24, 8);
        __builtin_memcpy(&p->daddr_lo, h + 32, 8);
    } else {
        return -1;
    }
    __u8 *t = head + th;
    __u16 ports[2] = {};
    if (bpf_probe_read_kernel(ports, sizeof(ports), t))
        return -1;
    p->sport = be16(ports[0]);
    p->dport = be16(ports[1]);
    return p->protocol == IPPROTO_UDP ? 0 : -1;
}

/* Report a UDP flow unless this process reported it in the last 30 minutes. */
static __always_inline void udp_flow(struct pkt *p, __u32 pid, __u32 tid, __u32 uid, __u8 initiated)
{
    struct flow_key k = {};
    k.pid = pid;
    k.initiated = initiated;
    k.sport = p->sport;
    k.dport = p->dport;
    k.saddr_hi = p->saddr_hi;
    k.saddr_lo = p->saddr_lo;
    k.daddr_hi = p->daddr_hi;
    k.daddr_lo = p->daddr_lo;
    __u64 now = bpf_ktime_get_boot_ns();
    __u64 *last = udp_seen.lookup(&k);
    if (last && now - *last < UDP_REPORT_NS)
        return;
    udp_seen.update(&k, &now);
    struct rec_net_connect r = {};
    fill_header(&r, KIND_NET_CONNECT, pid, tid);
    r.family = p->family;
    r.protocol = IPPROTO_UDP;
    r.initiated = initiated;
    r.sport = p->sport;
    r.dport = p->dport;
    r.saddr_hi = p->saddr_hi;
    r.saddr_lo = p->saddr_lo;
    r.daddr_hi = p->daddr_hi;
    r.daddr_lo = p->daddr_lo;
    emit_conn(&r, uid);
}

/* TP_PROTO(struct sk_buff *skb): a packet handed to a device queue (outbound UDP). */
TRACEPOINT_PROBE(net, net_dev_queue)
{
    if (!kind_enabled(KIND_NET_CONNECT))
        return 0;
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    void *skb = args->skbaddr;
    __u64 sk = (__u64)read_ptr(skb, o->skb_sk);
    struct owner *w = sk ? udp_owner.lookup(&sk) : 0;
    if (!w)
        return 0;
    struct pkt p = {};
    if (parse_skb(o, skb, &p) || p.protocol != IPPROTO_UDP)
        return 0;
    udp_flow(&p, w->pid, w->tid, w->uid, 1);
    return 0;
}

/* UDP receives: the datagram is gone from the kernel when recvfrom/recvmsg return, so the
 * arguments are kept at entry and the result read at exit. A connected socket's peer comes
 * from its struct sock; an unconnected one's from the sockaddr the kernel just wrote for the
 * process. DNS answers (peer port 53) also carry the payload the process received. */
#define RECV_FROM 1
#define RECV_MSG 2
#define RECV_READ 3
#define RECV_MMSG 4
#define S_IFMT 00170000
#define S_IFSOCK 0140000

static __always_inline int on_recv_enter(long fd, __u64 buf, __u64 addr, __u64 how)
{
    if (!kind_enabled(KIND_NET_CONNECT) && !kind_enabled(KIND_DNS_PACKET))
        return 0;
    __u64 tid = bpf_get_current_pid_tgid();
    struct stash_val v = {(__u64)fd, buf, addr, how};
    stash.update(&tid, &v);
    return 0;
}

/* format: int fd; void *ubuf; size_t size; unsigned int flags; struct sockaddr *addr; int *addr_len; */
TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom)
{
    return on_recv_enter(args->fd, (__u64)args->ubuf, (__u64)args->addr, RECV_FROM);
}

/* format: int fd; struct user_msghdr *msg; unsigned int flags; */
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg) { return on_recv_enter(args->fd, (__u64)args->msg, 0, RECV_MSG); }

/* format: int fd; struct mmsghdr *mmsg; unsigned int vlen; unsigned int flags; struct __kernel_timespec *timeout; */
TRACEPOINT_PROBE(syscalls, sys_enter_recvmmsg)
{
    return on_recv_enter(args->fd, (__u64)args->mmsg, 0, RECV_MMSG);
}

/* read() matters only for DNS over TCP (glibc reads the answer with read()): kept only for a
 * socket whose peer is port 53, so other reads cost a descriptor lookup and nothing more.
 * format: unsigned int fd; char *buf; size_t count; */
TRACEPOINT_PROBE(syscalls, sys_enter_read)
{
    if (!kind_enabled(KIND_DNS_PACKET))
        return 0;
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    void *file = fd_file(o, (void *)bpf_get_current_task(), args->fd);
    __u16 mode = read_u16(read_ptr(file, o->file_f_inode), o->inode_mode);
    if ((mode & S_IFMT) != S_IFSOCK)
        return 0;
    void *sock = read_ptr(read_ptr(file, o->file_private_data), o->socket_sk);
    if (be16(read_u16(sock, o->sk_dport)) != DNS_PORT)
        return 0;
    return on_recv_enter(args->fd, (__u64)args->buf, 0, RECV_READ);
}

/* One received message: `base` holds the socket's own side (and its connected peer, if any);
 * an unconnected socket's peer is read from the sockaddr the kernel wrote for the process. */
static __always_inline void recv_one(struct pkt *base, __u64 id, __u32 uid, __u64 how, __u64 buf, __u64 uaddr,
                                     __u64 ret)
{
    struct pkt p = *base;
    if (!p.sport && uaddr) {
        if (p.family == AF_INET) { /* sockaddr_in {family, port, addr} */
            __u16 sin[4] = {};
            bpf_probe_read_user(sin, sizeof(sin), (void *)uaddr);
            p.sport = be16(sin[1]);
            addr4(&p.saddr_hi, &p.saddr_lo, sin[2] | ((__u32)sin[3] << 16));
        } else { /* sockaddr_in6 {family, port, flowinfo, addr[16]} */
            __u8 sin6[24] = {};
            bpf_probe_read_user(sin6, sizeof(sin6), (void *)uaddr);
            p.sport = ((__u16)sin6[2] << 8) | sin6[3];
            __builtin_memcpy(&p.saddr_hi, sin6 + 8, 8);
            __builtin_memcpy(&p.saddr_lo, sin6 + 16, 8);
        }
    }
    /* Source = the remote sender, Destination = this host, as upstream reports receives */
    if (p.protocol == IPPROTO_UDP && how != RECV_READ && kind_enabled(KIND_NET_CONNECT))
        udp_flow(&p, id >> 32, (__u32)id, uid, 0);
    if (p.sport == DNS_PORT && kind_enabled(KIND_DNS_PACKET))
        emit_dns(id, uid, p.family, p.protocol, 0, p.sport, p.dport, ret, buf);
}

static __always_inline int on_recv_exit(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct stash_val a;
    if (!stash_take(id, &a))
        return 0;
    if (ret <= 0)
        return 0;
    struct sysmon_offsets *o = get_offsets();
    if (!o)
        return 0;
    void *task = (void *)bpf_get_current_task();
    void *sock = read_ptr(read_ptr(fd_file(o, task, a.a), o->file_private_data), o->socket_sk);
    __u16 proto = sock ? read_u16(sock, o->sk_protocol) : 0;
    if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
        return 0;
    struct pkt p = {};
    p.family = read_u16(sock, o->sk_family);
    p.protocol = proto;
    p.dport = read_u16(sock, o->sk_num);
    p.sport = be16(read_u16(sock, o->sk_dport));
    if (p.family == AF_INET) {
        addr4(&p.daddr_hi, &p.daddr_lo, read_u32(sock, o->sk_rcv_saddr, 0));
        addr4(&p.saddr_hi, &p.saddr_lo, read_u32(sock, o->sk_daddr, 0));
    } else if (p.family == AF_INET6) {
        p.daddr_hi = read_u64(sock, o->sk_v6_rcv_saddr);
        p.daddr_lo = read_u64(sock, o->sk_v6_rcv_saddr + 8);
        p.saddr_hi = read_u64(sock, o->sk_v6_daddr);
        p.saddr_lo = read_u64(sock, o->sk_v6_daddr + 8);
    } else {
        return 0;
    }
    __u32 uid = current_uid(o, task);
    if (a.d == RECV_FROM || a.d == RECV_READ) {
        recv_one(&p, id, uid, a.d, a.b, a.c, ret);
        return 0;
    }
    /* recvmsg: one user_msghdr; recvmmsg: `ret` mmsghdrs, each with its msg_len */
    __u32 n = a.d == RECV_MSG ? 1 : (__u32)ret;
    for (__u32 i = 0; i < MMSG_MAX; i++) {
        if (i >= n)
            break;
        __u64 at = a.b + i * MMSGHDR_SIZE;
        struct user_msghdr_head m = {};
        __u64 buf = 0;
        __u32 got = (__u32)ret;
        if (bpf_probe_read_user(&m, sizeof(m), (void *)at) ||
            bpf_probe_read_user(&buf, sizeof(buf), (void *)m.msg_iov)) /* iov[0].iov_base */
            break;
        if (a.d == RECV_MMSG && bpf_probe_read_user(&got, sizeof(got), (void *)(at + 56)))
            break;
        recv_one(&p, id, uid, a.d, buf, m.msg_name, got);
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) { return on_recv_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) { return on_recv_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_recvmmsg) { return on_recv_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return on_recv_exit(args->ret); }
