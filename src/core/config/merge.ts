// Merging the files of a config directory into one config, keeping track of where every part
// came from so a diagnostic about the merged config points into the right file. Pure.
//
// Rules: files in name order; proxies concatenated in that order; settings merged key by key, and
// a settings key set in two files is an error naming both (no silent precedence). Duplicate proxy
// names across files are found by the semantic checks, which name both places.

import type { Diagnostic, PositionIndex } from './diagnostics.js';
import { locateInFile } from './locate.js';
import { joinPointer, splitPointer } from './pointer.js';
import type { RawConfig, RawProxy, RawSettings } from './raw-types.js';
import { setOwn } from './own.js';
import type { SourceRef } from './types.js';

export interface ParsedFile {
  file: string;
  /** The file's value after schema validation (an empty file reads as {}). */
  value: RawConfig;
  positions: PositionIndex;
}


export interface MergedConfig {
  proxies: RawProxy[];
  settings: RawSettings;
  files: readonly ParsedFile[];
  /** Maps a pointer into the merged config to its file, file-local pointer and position. */
  locate(pointer: string, onKey?: boolean): SourceRef;
}

export function mergeFiles(files: readonly ParsedFile[]): { merged: MergedConfig; diagnostics: Diagnostic[] } {
  const proxies: RawProxy[] = [];
  const proxyOrigins: { file: number; index: number }[] = [];
  const settings: RawSettings = {};
  const settingsOrigins = new Map<string, number>();
  const diagnostics: Diagnostic[] = [];

  files.forEach((f, fileIndex) => {
    (f.value.proxies ?? []).forEach((p, index) => {
      proxies.push(p);
      proxyOrigins.push({ file: fileIndex, index });
    });
    for (const [key, value] of Object.entries(f.value.settings ?? {})) {
      const first = settingsOrigins.get(key);
      if (first !== undefined) {
        const pointer = joinPointer('/settings', key);
        const firstFile = files[first]!;
        const firstAt = locateInFile(firstFile.positions, pointer, true);
        diagnostics.push({
          severity: 'error',
          stage: 'semantic',
          file: f.file,
          pointer,
          ...locateInFile(f.positions, pointer, true),
          message: `settings key ${key} is also set in ${firstFile.file}:${firstAt.line}:${firstAt.column}; each settings key may be set in one file only`,
        });
        continue;
      }
      settingsOrigins.set(key, fileIndex);
      setOwn(settings as Record<string, unknown>, key, value);
    }
  });

  const firstWithSettings = files.findIndex((f) => f.value.settings !== undefined);
  const toFile = (pointer: string): { fileIndex: number; pointer: string } => {
    // One file: a proxy's pointer is its file-local pointer (no split and join per SourceRef).
    if (files.length === 1 && pointer.startsWith('/proxies/')) return { fileIndex: 0, pointer };
    const tokens = splitPointer(pointer);
    if (tokens[0] === 'proxies' && tokens.length >= 2) {
      const origin = proxyOrigins[Number(tokens[1])];
      if (origin) return { fileIndex: origin.file, pointer: joinPointer('/proxies', origin.index, ...tokens.slice(2)) };
    }
    if (tokens[0] === 'settings') {
      const origin = tokens.length >= 2 ? settingsOrigins.get(tokens[1]!) : undefined;
      if (origin !== undefined) return { fileIndex: origin, pointer };
      if (firstWithSettings >= 0) return { fileIndex: firstWithSettings, pointer: '/settings' };
    }
    return { fileIndex: 0, pointer };
  };

  const locate = (pointer: string, onKey = false): SourceRef => {
    // One file: a proxy's pointer is its file-local pointer (the normalized config locates
    // ~70,000 of them for 10,000 proxies: no intermediate object, no spread).
    const single = files.length === 1 && pointer.startsWith('/proxies/');
    const { fileIndex, pointer: local } = single ? { fileIndex: 0, pointer } : toFile(pointer);
    const f = files[fileIndex];
    if (!f) return { file: '', pointer: local };
    const at = locateInFile(f.positions, local, onKey);
    return at.line === undefined ? { file: f.file, pointer: local } : { file: f.file, pointer: local, line: at.line, column: at.column! };
  };

  return { merged: { proxies, settings, files, locate }, diagnostics };
}
