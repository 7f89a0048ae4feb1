/* espinudp PORT: hold UDP sockets (IPv4 and IPv6) on PORT with UDP_ENCAP_ESPINUDP, as an
 * IKE daemon does, so that the guest kernel takes ESP in UDP (RFC 3948) arriving there
 * and hands it to xfrm (`ip xfrm state ... encap espinudp`). The kernel sends ESP in UDP
 * by itself; only receiving needs the socket. Forks: the child keeps the sockets open
 * until it is killed; the parent prints the child's PID and exits. Static, for the
 * interop guest (interop/build.py GUEST_TOOLS). */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_ENCAP
#define UDP_ENCAP 100
#endif
#ifndef UDP_ENCAP_ESPINUDP
#define UDP_ENCAP_ESPINUDP 2
#endif

static int encap_socket(int family, int port)
{
	int fd = socket(family, SOCK_DGRAM, 0);
	int one = 1, type = UDP_ENCAP_ESPINUDP;
	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 a6;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		memset(&a6, 0, sizeof(a6));
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons(port);
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) < 0) {
			perror("bind6");
			exit(1);
		}
	} else {
		struct sockaddr_in a4;
		memset(&a4, 0, sizeof(a4));
		a4.sin_family = AF_INET;
		a4.sin_port = htons(port);
		if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) < 0) {
			perror("bind");
			exit(1);
		}
	}
	if (setsockopt(fd, SOL_UDP, UDP_ENCAP, &type, sizeof(type)) < 0) {
		perror("setsockopt UDP_ENCAP");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	pid_t pid;
	int port;
	if (argc != 2 || (port = atoi(argv[1])) <= 0 || port > 65535) {
		fprintf(stderr, "usage: espinudp PORT\n");
		return 2;
	}
	encap_socket(AF_INET, port);
	encap_socket(AF_INET6, port);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid > 0) {
		printf("%d\n", (int)pid);
		return 0;
	}
	for (;;)
		pause();
}
