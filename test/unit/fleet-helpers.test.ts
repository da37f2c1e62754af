import { afterEach, describe, expect, it, vi } from 'vitest';
import { progress } from '../../src/cli/context';
import { mapLimit } from '../../src/client/concurrency';

describe('mapLimit', () => {
  it('keeps the order, never runs more than the limit at once, and reports each one done', async () => {
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    const results = await mapLimit(
      Array.from({ length: 50 }, (_, i) => i),
      7,
      async (n) => {
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, (n * 7) % 5));
        running--;
        return n * 2;
      },
      (done) => seen.push(done),
    );
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
    expect(peak).toBe(7);
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('stops starting calls after the first error and throws it once the others settle', async () => {
    const started: number[] = [];
    await expect(
      mapLimit([1, 2, 3, 4, 5, 6], 2, async (n) => {
        started.push(n);
        if (n === 2) throw new Error('two failed');
        await new Promise((r) => setTimeout(r, 5));
        return n;
      }),
    ).rejects.toThrow('two failed');
    expect(started.length).toBeLessThan(6);
  });
});

describe('progress', () => {
  const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
  afterEach(() => {
    vi.restoreAllMocks();
    if (tty) Object.defineProperty(process.stderr, 'isTTY', tty);
    else delete (process.stderr as { isTTY?: boolean }).isTTY;
  });

  it('writes a line on a terminal, clears it at the end, and never with --json or off a terminal', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    const shown = progress('reading schedules');
    shown.tick(10, 10);
    shown.end();
    expect(write.mock.calls.map((c) => String(c[0]))).toEqual(['\r\x1b[Kreading schedules: 10/10', '\r\x1b[K']);

    write.mockClear();
    const json = progress('reading schedules', true);
    json.tick(10, 10);
    json.end();
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    const piped = progress('reading schedules');
    piped.tick(10, 10);
    piped.end();
    expect(write).not.toHaveBeenCalled();
  });
});
