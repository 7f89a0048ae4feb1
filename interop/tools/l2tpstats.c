/*
 * l2tpstats: print every L2TP session's counters as the kernel keeps them.
 *
 * iproute2 asks the kernel for these (L2TP_ATTR_STATS over generic netlink) but does
 * not print them, and debugfs leaves out the discard counters. Built statically by
 * `python3 -m interop build` and run inside the kernel guest. One line per session:
 *   session <id> tunnel <id> peer_session <id> tx_packets N tx_bytes N ... rx_invalid N
 * Counters the running kernel does not send are left out.
 */
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/l2tp.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[1 << 16];

static const char *const stat_names[L2TP_ATTR_STATS_MAX + 1] = {
	[L2TP_ATTR_TX_PACKETS] = "tx_packets",
	[L2TP_ATTR_TX_BYTES] = "tx_bytes",
	[L2TP_ATTR_TX_ERRORS] = "tx_errors",
	[L2TP_ATTR_RX_PACKETS] = "rx_packets",
	[L2TP_ATTR_RX_BYTES] = "rx_bytes",
	[L2TP_ATTR_RX_SEQ_DISCARDS] = "rx_seq_discards",
	[L2TP_ATTR_RX_OOS_PACKETS] = "rx_oos_packets",
	[L2TP_ATTR_RX_ERRORS] = "rx_errors",
	[L2TP_ATTR_RX_COOKIE_DISCARDS] = "rx_cookie_discards",
	[L2TP_ATTR_RX_INVALID] = "rx_invalid",
};

static int request(int fd, uint16_t type, uint16_t flags, uint8_t cmd, uint8_t version,
		   const char *family_name)
{
	struct {
		struct nlmsghdr n;
		struct genlmsghdr g;
		char attrs[64];
	} req;
	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	req.n.nlmsg_type = type;
	req.n.nlmsg_flags = NLM_F_REQUEST | flags;
	req.n.nlmsg_seq = 1;
	req.g.cmd = cmd;
	req.g.version = version;
	if (family_name) {
		struct nlattr *a = (struct nlattr *)((char *)&req + NLMSG_ALIGN(req.n.nlmsg_len));
		size_t len = strlen(family_name) + 1;
		a->nla_type = CTRL_ATTR_FAMILY_NAME;
		a->nla_len = NLA_HDRLEN + len;
		memcpy((char *)a + NLA_HDRLEN, family_name, len);
		req.n.nlmsg_len = NLMSG_ALIGN(req.n.nlmsg_len) + NLA_ALIGN(a->nla_len);
	}
	return send(fd, &req, req.n.nlmsg_len, 0) < 0 ? -1 : 0;
}

/* Calls fn for each attribute in [start, start+len). */
#define FOR_ATTRS(a, start, len)                                                  \
	for (struct nlattr *a = (struct nlattr *)(start);                          \
	     (char *)a + NLA_HDRLEN <= (char *)(start) + (len) && a->nla_len >= NLA_HDRLEN; \
	     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))

static void *payload(struct nlattr *a) { return (char *)a + NLA_HDRLEN; }

static int family_id(int fd)
{
	if (request(fd, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, 1, L2TP_GENL_NAME) < 0)
		return -1;
	int n = recv(fd, buf, sizeof(buf), 0);
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (n < 0 || !NLMSG_OK(h, (unsigned)n) || h->nlmsg_type == NLMSG_ERROR)
		return -1;
	char *attrs = (char *)NLMSG_DATA(h) + GENL_HDRLEN;
	FOR_ATTRS(a, attrs, h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN))
		if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID)
			return *(uint16_t *)payload(a);
	return -1;
}

static void print_session(struct nlmsghdr *h)
{
	char *attrs = (char *)NLMSG_DATA(h) + GENL_HDRLEN;
	int len = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	uint32_t sid = 0, tid = 0, psid = 0;
	struct nlattr *stats = NULL;
	FOR_ATTRS(a, attrs, len) {
		switch (a->nla_type & NLA_TYPE_MASK) {
		case L2TP_ATTR_SESSION_ID: sid = *(uint32_t *)payload(a); break;
		case L2TP_ATTR_CONN_ID: tid = *(uint32_t *)payload(a); break;
		case L2TP_ATTR_PEER_SESSION_ID: psid = *(uint32_t *)payload(a); break;
		case L2TP_ATTR_STATS: stats = a; break;
		}
	}
	printf("session %u tunnel %u peer_session %u", sid, tid, psid);
	if (stats) {
		FOR_ATTRS(s, payload(stats), stats->nla_len - NLA_HDRLEN) {
			int t = s->nla_type & NLA_TYPE_MASK;
			if (t <= L2TP_ATTR_STATS_MAX && stat_names[t]) {
				uint64_t v;
				memcpy(&v, payload(s), sizeof(v));
				printf(" %s %llu", stat_names[t], (unsigned long long)v);
			}
		}
	}
	printf("\n");
}

int main(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
	if (fd < 0) {
		perror("l2tpstats: socket");
		return 1;
	}
	int fam = family_id(fd);
	if (fam < 0) {
		fprintf(stderr, "l2tpstats: no l2tp generic netlink family (l2tp_netlink loaded?)\n");
		return 1;
	}
	if (request(fd, fam, NLM_F_DUMP, L2TP_CMD_SESSION_GET, L2TP_GENL_VERSION, NULL) < 0) {
		perror("l2tpstats: send");
		return 1;
	}
	for (;;) {
		int n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("l2tpstats: recv");
			return 1;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				fprintf(stderr, "l2tpstats: %s\n", strerror(-e->error));
				return 1;
			}
			if (h->nlmsg_type == fam)
				print_session(h);
		}
	}
}
