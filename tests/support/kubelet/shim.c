/* The pod network, as far as listening goes: a process that binds the wildcard address (0.0.0.0, ::,
 * ::ffff:0.0.0.0) or the loopback (127.0.0.1, ::1) binds its pod's own loopback IP ($KUBELET_POD_IP)
 * instead (v4-mapped on an IPv6 socket, as gRPC's dual-stack listeners use), so two pods can both
 * listen on :4317 as in a cluster. Loaded with LD_PRELOAD by sandbox.py; see README.md. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real_bind)(int, const struct sockaddr *, socklen_t);
    if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    const char *pod_ip = getenv("KUBELET_POD_IP");
    if (pod_ip && addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in copy;
        memcpy(&copy, addr, sizeof copy);
        if (copy.sin_addr.s_addr == htonl(INADDR_ANY) || copy.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            if (inet_pton(AF_INET, pod_ip, &copy.sin_addr) == 1)
                return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
        }
    }
    if (pod_ip && addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 copy6;
        memcpy(&copy6, addr, sizeof copy6);
        const unsigned char *b = copy6.sin6_addr.s6_addr;
        int mapped = b[10] == 0xff && b[11] == 0xff && !memcmp(b, "\0\0\0\0\0\0\0\0\0\0", 10);
        int wildcard = IN6_IS_ADDR_UNSPECIFIED(&copy6.sin6_addr) || IN6_IS_ADDR_LOOPBACK(&copy6.sin6_addr) ||
                       (mapped && ((b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] == 0) || b[12] == 127));
        struct in_addr v4;
        if (wildcard && inet_pton(AF_INET, pod_ip, &v4) == 1) {
            memset(&copy6.sin6_addr, 0, sizeof copy6.sin6_addr);
            copy6.sin6_addr.s6_addr[10] = 0xff;
            copy6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&copy6.sin6_addr.s6_addr[12], &v4, 4);
            int off = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
            return real_bind(fd, (const struct sockaddr *)&copy6, sizeof copy6);
        }
    }
    return real_bind(fd, addr, len);
}
