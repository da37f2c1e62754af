/** An IP address as sockets report it, in one spelling: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as IPv4. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return (mapped ? mapped[1]! : address).toLowerCase();
}
