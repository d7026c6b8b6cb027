// The sandbox: network-namespace topologies, backend servers and clients for end-to-end tests,
// the benchmark and the demo. See topology.ts for the layout and the offload choices, and
// topology-variants.ts for the link-layer variants (untuned veth, bridge, VLAN, bond).

export * from './process.js';
export * from './topology.js';
export * from './clients.js';
export * from './netns.js';
export * from './seed-topology.js';
