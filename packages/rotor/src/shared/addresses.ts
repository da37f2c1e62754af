import { isIP } from 'node:net';

/*
 * Addresses of reporting instances: one spelling per address, and one vote per host. IPv6 text is made canonical by
 * the WHATWG URL parser (lower case, the longest run of zeros as `::`, no dotted quad), never by hand.
 */

/** The prefix length by which IPv6 sources are grouped into one instance by default: a host's own /64. */
export const DEFAULT_IPV6_INSTANCE_PREFIX = 64;

/**
 * An IP address as sockets and proxies report it, in one spelling: IPv4 as is; IPv4-mapped IPv6 (`::ffff:10.0.0.1`,
 * `::ffff:a00:1`) as IPv4; other IPv6 canonical, without a zone (`fe80::1%eth0` is `fe80::1`). Anything else
 * (`unknown`) is returned lower-cased.
 */
export function normalizeAddress(address: string): string {
  const groups = ipv6Groups(address);
  if (!groups) return address.toLowerCase();
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff)
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  return ipv6Text(groups);
}

/**
 * The host an address counts as when instances vote: an IPv4 address itself; an IPv6 address's network of
 * `ipv6Prefix` bits (`2001:db8:1:2::/64`), since one IPv6 host may use any number of addresses of its /64 (privacy
 * addresses, a routed prefix); 128 keeps each address apart.
 */
export function instanceAddress(address: string, ipv6Prefix = DEFAULT_IPV6_INSTANCE_PREFIX): string {
  const normal = normalizeAddress(address);
  const groups = ipv6Groups(normal);
  if (!groups || ipv6Prefix >= 128) return normal;
  const masked = groups.map((g, i) => {
    const bits = Math.min(16, Math.max(0, ipv6Prefix - 16 * i));
    return bits === 0 ? 0 : g & ((0xffff << (16 - bits)) & 0xffff);
  });
  return `${ipv6Text(masked)}/${ipv6Prefix}`;
}

/** An IPv6 address's eight 16-bit groups, or undefined for anything else. */
function ipv6Groups(address: string): number[] | undefined {
  const bare = address.replace(/%.*$/, '');
  if (isIP(bare) !== 6) return undefined;
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  const [head, tail] = canonical.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const front = parse(head);
  const back = parse(tail);
  return tail === undefined ? front : [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function ipv6Text(groups: number[]): string {
  return new URL(`http://[${groups.map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1);
}
