// From a JSON pointer to a line:column in its file, through the readers' position index.

import type { Position, PositionIndex } from './diagnostics.js';
import { parentPointer } from './pointer.js';

/**
 * The position of the value at `pointer` (of its key when `onKey` and it has one). A pointer with
 * no node of its own (a missing key, a value reached through a YAML alias) falls back to its
 * nearest ancestor that has one, so every diagnostic of a parsed file carries line and column.
 */
export function locateInFile(positions: PositionIndex, pointer: string, onKey = false): Partial<Position> {
  let p = pointer;
  for (;;) {
    const node = positions.get(p);
    if (node) {
      const pos = onKey && p === pointer && node.key ? node.key : node.value;
      return { line: pos.line, column: pos.column };
    }
    if (p === '') return {};
    p = parentPointer(p);
  }
}
