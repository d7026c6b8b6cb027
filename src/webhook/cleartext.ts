// Whether a GitLab delivery's token may have crossed a network in cleartext. The receiver speaks
// plain HTTP; a peer on loopback is taken to be the TLS proxy in front, and a remote proxy says so
// with X-Forwarded-Proto: https. (Both can be forged by a client; this only decides a warning.)

export function isLoopbackAddress(address: string): boolean {
  return /^(127\.|::ffff:127\.)/.test(address) || address === '::1' || address === 'localhost';
}

export function cameInCleartext(remoteAddress: string | undefined, forwardedProto: string | undefined): boolean {
  if (remoteAddress !== undefined && isLoopbackAddress(remoteAddress)) return false;
  return forwardedProto?.split(',')[0]?.trim().toLowerCase() !== 'https';
}
