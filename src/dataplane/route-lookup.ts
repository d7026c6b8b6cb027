// The kernel's route to one IPv4 destination, from the calling thread's network namespace: the
// answer `ip route get ADDR` prints (the FIB lookup the stack makes for a packet to it), over
// rtnetlink. `lb doctor` asks it for each backend and for the clients' networks.

import { NETLINK_ROUTE } from './netlink/codec.js';
import { decodeRoute, getRouteRequest, type RouteAnswer } from './netlink/route-messages.js';
import { NetlinkError, withNetlink } from './netlink/socket.js';

export type { RouteAnswer };

const ENETUNREACH = 101;
const EHOSTUNREACH = 113;
const EINVAL = 22;

/** The route to `dst`, or null when there is none (network unreachable). */
export function routeGet(dst: string): RouteAnswer | null {
  return withNetlink(NETLINK_ROUTE, (rt) => {
    const seq = rt.nextSeq();
    try {
      const m = rt.request(getRouteRequest(seq, dst), seq, `RTM_GETROUTE ${dst}`, false).messages[0];
      return m ? decodeRoute(m) : null;
    } catch (err) {
      if (err instanceof NetlinkError && [ENETUNREACH, EHOSTUNREACH, EINVAL].includes(err.errno)) return null;
      throw err;
    }
  });
}
