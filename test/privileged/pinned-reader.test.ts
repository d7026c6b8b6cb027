// The daemon's reader of the pinned data plane (src/dataplane/pinned-reader.ts) on a real
// instance: the handle is kept between reads while the pin directory is unchanged, and a change
// of pins (the instance taken down and loaded again, as `lb down` / `lb up` or an upgrade do
// behind the daemon's back) makes the next read open the new maps, never read the old ones.
// The wall clock the settling rule compares with is injected.
import { afterEach, expect, it, vi } from 'vitest';
import { DataPlane, IDLE_CLOSE_MS, PinnedDataPlane, STAMP_SETTLE_MS, encodeU32 } from '../../src/dataplane/index.js';
import { closeHarness, openHarness, type Harness } from '../lib/fixture-harness.js';

let h: Harness | undefined;
let reader: PinnedDataPlane | undefined;
afterEach(() => {
  vi.useRealTimers();
  reader?.close();
  reader = undefined;
  closeHarness(h);
  h = undefined;
});

/** lb_settings[1]'s first byte, through the reader. */
const readMark = (r: PinnedDataPlane): number | null => r.read((dp) => dp.maps.lb_settings.lookup(encodeU32(1))?.[0] ?? 0);
const writeMark = (dp: DataPlane, v: number): void => {
  const value = Buffer.alloc(dp.maps.lb_settings.valueSize);
  value[0] = v;
  dp.maps.lb_settings.update(encodeU32(1), value);
};

it('keeps one handle while the pins are unchanged, and opens the new ones after the instance is loaded again', () => {
  h = openHarness('pinned');
  writeMark(h.dp, 11);
  // The directory was just made: settled only once the clock is past its last change.
  const later = (): number => Date.now() + 10 * STAMP_SETTLE_MS;
  reader = new PinnedDataPlane(h.instance, later);
  expect(readMark(reader)).toBe(11);
  expect(readMark(reader)).toBe(11);
  expect(reader.opens, 'one open for both reads').toBe(1);

  // Taken down and loaded again: new maps under the same names.
  h.dp.close();
  DataPlane.down(h.instance);
  const again = DataPlane.open({ instance: h.instance, objectDir: 'build/bpf' });
  h = { dp: again, instance: h.instance };
  writeMark(again, 22);
  expect(readMark(reader), 'the new instance\'s map, not the old one').toBe(22);
  expect(reader.opens).toBe(2);

  // Taken down: nothing to read, and nothing is loaded by the read.
  again.close();
  DataPlane.down(h.instance);
  expect(readMark(reader)).toBeNull();
  expect(DataPlane.down(h.instance).unpinned, 'no pins were made by the read').toEqual([]);
});

it('keeps no handle on pins that changed within the directory times\' resolution', () => {
  h = openHarness('pinned2');
  writeMark(h.dp, 5);
  // The clock as the directory's last change: a change later in the same tick would not show.
  reader = new PinnedDataPlane(h.instance, () => 0);
  expect(readMark(reader)).toBe(5);
  expect(readMark(reader)).toBe(5);
  expect(reader.opens, 'opened for each read').toBe(2);
});

it('closes a handle no read used for IDLE_CLOSE_MS', () => {
  h = openHarness('pinned3');
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  reader = new PinnedDataPlane(h.instance, () => Number.MAX_SAFE_INTEGER);
  expect(readMark(reader)).toBe(0);
  vi.advanceTimersByTime(IDLE_CLOSE_MS - 1);
  expect(readMark(reader)).toBe(0);
  expect(reader.opens, 'a read before the deadline uses the handle, and moves the deadline').toBe(1);
  vi.advanceTimersByTime(IDLE_CLOSE_MS + 1);
  expect(readMark(reader)).toBe(0);
  expect(reader.opens, 'closed when idle: opened again').toBe(2);
});
