// `ip -o monitor link` lines as iproute2 6.1 prints them, parsed into link events.
import { describe, expect, it } from 'vitest';
import { parseLinkLine } from '../../../src/daemon/link-watch.js';

describe('parseLinkLine', () => {
  it('reads a new link, its peer suffix and whether it is up with carrier', () => {
    expect(parseLinkLine('7: veth-c1@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default \\    link/ether 7a:1b:3c:4d:5e:6f brd ff:ff:ff:ff:ff:ff link-netns lbt1-c1'))
      .toEqual({ ifname: 'veth-c1', ifindex: 7, deleted: false, up: true });
    expect(parseLinkLine('7: veth-c1@if6: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default'))
      .toEqual({ ifname: 'veth-c1', ifindex: 7, deleted: false, up: false });
    expect(parseLinkLine('3: eth0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc mq state DOWN'))
      .toEqual({ ifname: 'eth0', ifindex: 3, deleted: false, up: false });
  });

  it('reads a deletion', () => {
    expect(parseLinkLine('Deleted 7: veth-c1@if6: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN'))
      .toEqual({ ifname: 'veth-c1', ifindex: 7, deleted: true, up: false });
  });

  it('ignores anything else', () => {
    for (const line of ['', 'garbage', '12: <UP>', 'Deleted veth-c1']) expect(parseLinkLine(line)).toBeNull();
  });
});
