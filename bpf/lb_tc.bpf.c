// SPDX-License-Identifier: GPL-2.0
/* lb_tc.bpf.c: TC egress on client-facing interfaces: replies backend->client get the VIP back (reverse NAT); answered and refused flows are marked and counted. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
/* TC never redirects; see lb_tx_ports in maps.h for why the devmap must stay out of this object. */
#define LB_MAPS_NO_TX_PORTS
#include "maps.h"
#include "parse.h"
#include "conntrack.h"
#include "stats.h"

char LICENSE[] SEC("license") = "GPL";

/* Enough for Ethernet, two VLAN tags and the largest IPv4 and TCP headers. */
#define LB_TC_PULL_LEN (ETH_HLEN + LB_MAX_VLANS * 4 + 60 + 60)

/*
 * saddr:sport -> VIP:port. The skb helpers keep the checksums right for CHECKSUM_PARTIAL
 * (offloaded) and CHECKSUM_COMPLETE skbs alike; they invalidate packet pointers, so all
 * reads happen before.
 */
static __always_inline int revnat(struct __sk_buff *skb, const struct lb_pkt *pkt, __be32 vip,
				  __be16 vport, int l4_csum)
{
	__u32 check_off = pkt->l3_off + __builtin_offsetof(struct iphdr, check);
	__u32 saddr_off = pkt->l3_off + __builtin_offsetof(struct iphdr, saddr);
	__u32 sport_off = pkt->l4_off; /* source port opens both TCP and UDP headers */
	__u32 csum_off;
	__u64 mangled = 0;

	if (pkt->proto == IPPROTO_TCP) {
		csum_off = pkt->l4_off + __builtin_offsetof(struct tcphdr, check);
	} else {
		csum_off = pkt->l4_off + __builtin_offsetof(struct udphdr, check);
		/* A computed 0 must go out as 0xffff: 0 means "no checksum" in UDP. */
		mangled = BPF_F_MARK_MANGLED_0;
	}

	if (l4_csum) {
		if (bpf_l4_csum_replace(skb, csum_off, pkt->saddr, vip,
					BPF_F_PSEUDO_HDR | mangled | sizeof(vip)))
			return -1;
		if (bpf_l4_csum_replace(skb, csum_off, pkt->sport, vport, mangled | sizeof(vport)))
			return -1;
	}
	if (bpf_l3_csum_replace(skb, check_off, pkt->saddr, vip, sizeof(vip)))
		return -1;
	if (bpf_skb_store_bytes(skb, saddr_off, &vip, sizeof(vip), 0))
		return -1;
	if (bpf_skb_store_bytes(skb, sport_off, &vport, sizeof(vport), 0))
		return -1;
	return 0;
}

SEC("tc")
int lb_tc_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct lb_flow_key fkey = {};
	struct lb_flow_key key = {};
	struct lb_pkt pkt = {};
	struct lb_flow *r, *f;
	__u8 replied;
	__u32 target_id;
	__be32 vip;
	__be16 vport;
	int l4_csum = 1;
	int res;

	res = parse_packet(data, data_end, skb->len, &pkt);
	if (res == LB_PARSE_MALFORMED && data_end - data < skb->len) {
		/* Headers may continue past the linear area: pull them in and parse again. */
		__u32 want = skb->len < LB_TC_PULL_LEN ? skb->len : LB_TC_PULL_LEN;

		if (bpf_skb_pull_data(skb, want))
			return TC_ACT_OK;
		/* The pull moved the data: re-derive every pointer (Cilium's revalidate_data). */
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(&pkt, 0, sizeof(pkt));
		res = parse_packet(data, data_end, skb->len, &pkt);
	}
	if (res != LB_PARSE_OK)
		return TC_ACT_OK;

	ct_key_from_pkt(&key, &pkt);
	r = bpf_map_lookup_elem(&lb_flows, &key);
	if (!r || r->dir != LB_DIR_REVERSE)
		return TC_ACT_OK;
	vip = r->nat_addr;
	vport = r->nat_port;
	target_id = r->target_id;
	replied = r->state & LB_CT_REPLIED;
	ct_touch(r, bpf_ktime_get_ns());

	if (pkt.proto == IPPROTO_UDP) {
		struct udphdr *udp = pkt.l4;

		if ((void *)(udp + 1) > data_end) /* verifier: re-prove bounds of the pointer kept in pkt */
			return TC_ACT_OK;
		l4_csum = udp->check != 0; /* no UDP checksum: nothing to update */
	}

	/* A half-rewritten packet must not leave: drop if a helper fails. */
	if (revnat(skb, &pkt, vip, vport, l4_csum))
		return TC_ACT_SHOT;
	stat_inc(LB_STAT_TC_REVNAT);

	/* The client's key: client -> VIP. (The skb helpers invalidate packet pointers, not r.) */
	ct_key_other(&fkey, pkt.daddr, pkt.dport, vip, vport, pkt.proto);
	if (pkt.tcp_flags & LB_TCPF_RST) {
		/* RST: the packet leaves rewritten; the flow ends with it (both entries deleted). */
		f = bpf_map_lookup_elem(&lb_flows, &fkey);
		if (f && ct_is_forward_to(f, pkt.saddr, pkt.sport)) {
			replied |= f->state & LB_CT_REPLIED;
			bpf_map_delete_elem(&lb_flows, &fkey);
		}
		/* Nothing of the backend passed before this RST: it refused the connection. */
		if (!replied)
			tstat_failed_conn(target_id);
		bpf_map_delete_elem(&lb_flows, &key);
		tstat_closed_flow(target_id);
		stat_inc(LB_STAT_CT_CLOSED);
		return TC_ACT_OK;
	}
	/* Only the first reply (and a FIN) costs the forward lookup; the reverse entry remembers. */
	if (!replied || (pkt.tcp_flags & LB_TCPF_FIN)) {
		ct_set_state(r, LB_CT_REPLIED);
		f = bpf_map_lookup_elem(&lb_flows, &fkey);
		if (f && ct_is_forward_to(f, pkt.saddr, pkt.sport)) {
			ct_set_state(f, LB_CT_REPLIED);
			if (pkt.tcp_flags & LB_TCPF_FIN)
				ct_set_state(f, LB_CT_FIN_BACKEND);
		}
	}
	return TC_ACT_OK;
}
