import { describe, expect, it } from 'vitest';
import { msUntilWindowOpens } from '../../packages/rotor/src/schedules/window';

const H = 3_600_000;

describe('msUntilWindowOpens', () => {
  it('is 0 inside the window and counts to the next opening outside it', () => {
    const window = { start: '02:00', end: '05:00', timezone: 'UTC' };
    expect(msUntilWindowOpens(new Date('2026-11-23T03:00:00Z'), window)).toBe(0);
    expect(msUntilWindowOpens(new Date('2026-11-23T05:00:00Z'), window)).toBe(21 * H);
    expect(msUntilWindowOpens(new Date('2026-11-23T01:30:00Z'), window)).toBe(H / 2);
  });

  it('reads the hours in the window time zone, across daylight saving', () => {
    const window = { start: '02:00', end: '05:00', timezone: 'Europe/Berlin' };
    // Winter: Berlin is UTC+1, so the window opens at 01:00Z.
    expect(msUntilWindowOpens(new Date('2026-11-23T00:00:00Z'), window)).toBe(H);
    // Summer: UTC+2, it opens at 00:00Z.
    expect(msUntilWindowOpens(new Date('2026-07-01T23:00:00Z'), window)).toBe(H);
  });

  it('handles windows that cross midnight, and weekdays', () => {
    const window = { start: '22:00', end: '02:00', timezone: 'UTC', days: ['fri' as const] };
    // Saturday 01:00 is inside Friday's window.
    expect(msUntilWindowOpens(new Date('2026-11-28T01:00:00Z'), window)).toBe(0);
    // Saturday 03:00: the next opening is Friday 22:00, six days and nineteen hours later.
    expect(msUntilWindowOpens(new Date('2026-11-28T03:00:00Z'), window)).toBe((6 * 24 + 19) * H);
    // Thursday 23:00 is not in a window (Thursday is not allowed).
    expect(msUntilWindowOpens(new Date('2026-11-26T23:00:00Z'), window)).toBe(23 * H);
  });

  it('opens on the next whole minute boundary when starting mid-minute', () => {
    const window = { start: '02:00', end: '05:00', timezone: 'UTC' };
    expect(msUntilWindowOpens(new Date('2026-11-23T01:59:30Z'), window)).toBe(30_000);
  });
});
