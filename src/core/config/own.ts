// Setting a key of a map read from untrusted text: a key "__proto__" must become a plain
// property, never the object's prototype.

export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}
